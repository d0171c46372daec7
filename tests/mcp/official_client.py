"""phaseflow's MCP server driven by the official Python MCP SDK (PyPI `mcp`), over both transports.

Run by .ci/mcp-clients, which starts `phaseflow worker` and `phaseflow api`, registers two agents
and passes what this script needs in the environment:

    MCP_CLIENTS_API_URL         the API's base URL (the MCP endpoint is its /mcp)
    MCP_CLIENTS_OPERATOR_TOKEN  an operator's bearer token, for creating tickets over REST
    MCP_CLIENTS_AGENT_A, MCP_CLIENTS_TOKEN_A
                                agent A (every role), who calls over streamable HTTP
    MCP_CLIENTS_AGENT_B, MCP_CLIENTS_TOKEN_B
                                agent B (every role), who calls `phaseflow mcp` over stdio
    MCP_CLIENTS_PHASEFLOW       the phaseflow binary
    MCP_CLIENTS_LOGS            where the stdio servers' stderr goes (default: target/mcp-clients)

`phaseflow mcp` gets DATABASE_URL, AMQP_URL, RUST_LOG and every PHASEFLOW_* variable of this
process (the same settings as the API), and its agent's token in PHASEFLOW_TOKEN.

Each check prints one line when it passes; the first failure ends the run with exit status 1.
The last line is `N passed, N failed`.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

REPO = Path(__file__).resolve().parents[2]

API_URL = os.environ["MCP_CLIENTS_API_URL"].rstrip("/")
MCP_URL = f"{API_URL}/mcp"
OPERATOR_TOKEN = os.environ["MCP_CLIENTS_OPERATOR_TOKEN"]
AGENT_A = os.environ["MCP_CLIENTS_AGENT_A"]
TOKEN_A = os.environ["MCP_CLIENTS_TOKEN_A"]
AGENT_B = os.environ["MCP_CLIENTS_AGENT_B"]
TOKEN_B = os.environ["MCP_CLIENTS_TOKEN_B"]
PHASEFLOW = os.environ["MCP_CLIENTS_PHASEFLOW"]
LOGS = Path(os.environ.get("MCP_CLIENTS_LOGS", REPO / "target" / "mcp-clients"))

TOOLS = {
    "whoami",
    "get_workflow",
    "claim_task",
    "heartbeat",
    "release_task",
    "complete_task",
    "submit_artifact",
    "get_ticket",
    "list_tasks",
    "get_context",
    "check_transition",
    "request_transition",
    "submit_review",
}

# Properties each of these tools' inputSchema must name (the contract of their arguments).
INPUT_PROPERTIES = {
    "claim_task": {"ticket_id", "task_id", "task_types", "lease_seconds", "wait_seconds"},
    "heartbeat": {"task_id", "claim_id", "lease_seconds", "progress", "usage"},
    "complete_task": {"task_id", "claim_id", "status", "result", "artifacts", "usage"},
    "request_transition": {"ticket_id", "to_phase", "reason", "expected_from_phase"},
}

# A requirements document that the PHASE_REQUIREMENTS gate of config/workflow.toml accepts: a
# `content` text of at least 500 characters (a `length` that is absent is measured on it) and
# `sections` that include scope and acceptance_criteria.
REQUIREMENTS_TEXT = (
    "Scope: agents of a team take the tasks of a ticket's phases through the Model Context "
    "Protocol, over stdio or streamable HTTP, with the same rules as the HTTP API. Out of scope: "
    "creating tickets and managing agents, which stay with operators. "
    "Acceptance criteria: an agent lists the tools and the phase guidance prompt; it claims a "
    "task, renews its lease with progress and usage, and reports it completed with its "
    "artifacts; a refused call is an error result with a code, a message and reasons; a "
    "wrong token is refused before any tool runs; a claim that waits for work returns as soon "
    "as a task becomes claimable."
)
assert len(REQUIREMENTS_TEXT) >= 500, len(REQUIREMENTS_TEXT)

# Every call but a waiting claim answers within this.
CALL_TIMEOUT = 30.0
# How long one check may take in all.
CHECK_TIMEOUT = 120.0


class CheckFailed(Exception):
    """A check failed; it has been reported."""


# ---------------------------------------------------------------------------------------------
# Sessions and calls
# ---------------------------------------------------------------------------------------------


def http_client(token: str) -> httpx2.AsyncClient:
    """An HTTP client that sends the bearer token on every request."""
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(CALL_TIMEOUT, read=60.0),
    )


@asynccontextmanager
async def http_session(token: str) -> AsyncIterator[ClientSession]:
    """A session with /mcp, initialized with the `initialize` handshake."""
    async with http_client(token) as client:
        async with streamable_http_client(MCP_URL, http_client=client) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=60.0) as session:
                await session.initialize()
                yield session


def stdio_environment(token: str) -> dict[str, str]:
    """What `phaseflow mcp` needs: the API's settings, and the agent's token."""
    passed = {"DATABASE_URL", "AMQP_URL", "RUST_LOG"}
    env = {
        name: value
        for name, value in os.environ.items()
        if name in passed or name.startswith("PHASEFLOW_")
    }
    env["PHASEFLOW_TOKEN"] = token
    return env


@asynccontextmanager
async def stdio_session(token: str, name: str) -> AsyncIterator[ClientSession]:
    """An initialized session with `phaseflow mcp` run as a child; its stderr goes to a log."""
    parameters = StdioServerParameters(
        command=PHASEFLOW, args=["mcp"], env=stdio_environment(token), cwd=REPO
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"stdio-{name}.log", "a") as errlog:
        async with stdio_client(parameters, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=60.0) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def default_client(transport: str, token: str, name: str) -> AsyncIterator[Client]:
    """The SDK's high-level `Client` as it comes (mode "auto": it probes `server/discover` and
    falls back to the `initialize` handshake), over HTTP or stdio."""
    if transport == "http":
        async with http_client(token) as client:
            async with Client(streamable_http_client(MCP_URL, http_client=client)) as connected:
                yield connected
    else:
        parameters = StdioServerParameters(
            command=PHASEFLOW, args=["mcp"], env=stdio_environment(token), cwd=REPO
        )
        LOGS.mkdir(parents=True, exist_ok=True)
        with open(LOGS / f"stdio-{name}.log", "a") as errlog:
            async with Client(stdio_client(parameters, errlog=errlog)) as connected:
                yield connected


async def call(session: ClientSession, tool: str, arguments: dict[str, Any] | None = None) -> dict:
    """Calls a tool that must succeed; its structuredContent (checked by the SDK against the
    tool's outputSchema)."""
    result = await session.call_tool(tool, arguments or {})
    assert not result.is_error, f"{tool}({arguments}) was refused: {result.structured_content}"
    content = result.structured_content
    assert isinstance(content, dict), f"{tool}: structuredContent is not an object: {content!r}"
    return content


async def refused(
    session: ClientSession, tool: str, arguments: dict[str, Any], code: str
) -> dict:
    """Calls a tool that must be refused with `code`: an `isError` result whose
    structuredContent is {code, message, reasons}."""
    result = await session.call_tool(tool, arguments)
    content = result.structured_content
    assert result.is_error, f"{tool}({arguments}) was not refused: {content}"
    assert isinstance(content, dict), f"{tool}: a refusal without structuredContent: {result}"
    assert {"code", "message", "reasons"} <= content.keys(), f"{tool}: refusal {content}"
    assert content["code"] == code, f"{tool}({arguments}): code {content['code']!r}, expected {code!r}: {content}"
    assert isinstance(content["message"], str) and content["message"], f"{tool}: empty message: {content}"
    assert isinstance(content["reasons"], list), f"{tool}: reasons is not a list: {content}"
    return content


async def create_ticket(title: str) -> str:
    """Creates a ticket over the REST API (there is no tool for that), moving only on request."""
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT) as client:
        response = await client.post(
            f"{API_URL}/api/v1/tickets",
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            json={
                "title": title,
                "description": f"{title}, created by tests/mcp/official_client.py",
                "auto_advance": False,
            },
        )
    assert response.status_code == 201, f"POST /api/v1/tickets: {response.status_code} {response.text}"
    ticket = response.json()
    assert ticket["phase_id"] == "PHASE_BACKLOG", f"a new ticket is in {ticket['phase_id']}"
    assert ticket["auto_advance"] is False, f"auto_advance: {ticket['auto_advance']}"
    return ticket["id"]


async def phase_of(session: ClientSession, ticket_id: str) -> str:
    ticket = await call(session, "get_ticket", {"ticket_id": ticket_id})
    assert ticket["id"] == ticket_id, f"get_ticket answered ticket {ticket['id']}, asked for {ticket_id}"
    return ticket["phase_id"]


async def move(session: ClientSession, ticket_id: str, to_phase: str, **extra: Any) -> dict:
    moved = await call(
        session,
        "request_transition",
        {"ticket_id": ticket_id, "to_phase": to_phase, "reason": f"to {to_phase} by tool", **extra},
    )
    assert moved["ticket_id"] == ticket_id and moved["current_phase"] == to_phase, f"moved: {moved}"
    return moved


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_claim(claim: dict, agent: str, ticket_id: str, task_type: str | None = None) -> None:
    """A claim_task answer: the claim at the top level and in `task`, its guidance and context."""
    task = claim.get("task")
    assert isinstance(task, dict), f"claim_task claimed nothing: {claim}"
    for member in ("task_id", "claim_id", "task_type", "lease_expires_at", "guidance"):
        assert member in task, f"claim_task: task has no {member}: {task}"
    for member, value in task.items():
        assert claim.get(member) == value, (
            f"claim_task: top-level {member} {claim.get(member)!r} differs from task.{member} {value!r}"
        )
    assert claim["claim_id"], f"claim_task: no claim_id: {claim}"
    assert claim["ticket_id"] == ticket_id, f"claim_task claimed a task of {claim['ticket_id']}, not {ticket_id}"
    assert claim["claimed_by"] == agent, f"claim_task: claimed_by {claim['claimed_by']}, expected {agent}"
    if task_type is not None:
        assert claim["task_type"] == task_type, f"claim_task: {claim['task_type']}, expected {task_type}"
    guidance = claim.get("guidance")
    assert isinstance(guidance, dict) and guidance.get("prompt"), f"claim_task: no guidance: {guidance}"
    context = claim.get("context")
    assert isinstance(context, dict) and context.get("ticket_id") == ticket_id, (
        f"claim_task: no context of the ticket: {context}"
    )


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


async def check_listing(session: ClientSession) -> str:
    """tools/list names exactly the 13 tools, with object schemas naming their arguments;
    prompts/list has phase_guidance, and prompts/get answers its text."""
    listed = await session.list_tools()
    names = [tool.name for tool in listed.tools]
    assert len(names) == len(set(names)), f"a tool is listed twice: {sorted(names)}"
    assert set(names) == TOOLS, (
        f"tools: missing {sorted(TOOLS - set(names))}, unexpected {sorted(set(names) - TOOLS)}"
    )
    for tool in listed.tools:
        assert tool.description, f"{tool.name} has no description"
        assert tool.input_schema.get("type") == "object", f"{tool.name}: inputSchema {tool.input_schema}"
        assert tool.output_schema is not None, f"{tool.name} has no outputSchema"
        assert tool.output_schema.get("type") == "object", f"{tool.name}: outputSchema {tool.output_schema}"
    by_name = {tool.name: tool for tool in listed.tools}
    for name, expected in INPUT_PROPERTIES.items():
        properties = set(by_name[name].input_schema.get("properties", {}))
        assert expected <= properties, f"{name}: inputSchema lacks {sorted(expected - properties)}"

    prompts = await session.list_prompts()
    guidance = [prompt for prompt in prompts.prompts if prompt.name == "phase_guidance"]
    assert guidance, f"no phase_guidance prompt: {[prompt.name for prompt in prompts.prompts]}"
    arguments = {argument.name: argument for argument in guidance[0].arguments or []}
    assert "phase_id" in arguments, f"phase_guidance's arguments: {list(arguments)}"
    assert arguments["phase_id"].required, "phase_guidance's phase_id is not required"

    prompt = await session.get_prompt("phase_guidance", {"phase_id": "PHASE_DESIGN"})
    texts = [message.content.text for message in prompt.messages if message.content.type == "text"]
    assert texts and "PHASE_DESIGN" in texts[0], f"phase_guidance for PHASE_DESIGN: {prompt.messages}"
    assert "design_document" in texts[0], f"the design guidance names no design_document: {texts[0]!r}"

    # a phase without guidance is a protocol error, not a prompt
    try:
        await session.get_prompt("phase_guidance", {"phase_id": "PHASE_DONE"})
    except mcp.MCPError as error:
        assert "PHASE_DONE" in str(error), f"the error names no phase: {error}"
    else:
        raise AssertionError("phase_guidance for PHASE_DONE (no guidance) was answered")
    return f"{len(names)} tools with object schemas; phase_guidance prompt"


async def check_whoami(session: ClientSession, agent: str) -> str:
    """whoami answers the agent of the token."""
    me = await call(session, "whoami")
    assert me["agent_id"] == agent, f"whoami: agent_id {me['agent_id']!r}, expected {agent!r}"
    assert me["roles"] == ["*"], f"whoami: roles {me['roles']}"
    assert me["registered"] is True, f"whoami: registered {me['registered']}"
    assert me["operator"] is False, f"whoami: operator {me['operator']}"
    return f"agent_id {agent}"


async def check_ticket_to_design(session: ClientSession, agent: str) -> str:
    """A ticket goes from PHASE_BACKLOG through PHASE_REQUIREMENTS to PHASE_DESIGN by tool calls
    alone: a move, two tasks claimed, renewed and completed (the second with the gate's
    artifact), the gate checked and the move made; refusals on the way."""
    ticket_id = await create_ticket("MCP journey")
    assert await phase_of(session, ticket_id) == "PHASE_BACKLOG"

    # a move needs a reason
    await refused(
        session, "request_transition", {"ticket_id": ticket_id, "to_phase": "PHASE_REQUIREMENTS"},
        "invalid_request",
    )
    moved = await move(session, ticket_id, "PHASE_REQUIREMENTS")
    assert moved["previous_phase"] == "PHASE_BACKLOG" and moved["transitioned_by"] == agent, f"moved: {moved}"
    assert await phase_of(session, ticket_id) == "PHASE_REQUIREMENTS"

    # not allowed from here, and the gate is not met yet
    rejection = await refused(
        session, "request_transition",
        {"ticket_id": ticket_id, "to_phase": "PHASE_DONE", "reason": "straight to done"},
        "invalid_transition",
    )
    assert rejection["reasons"], f"invalid_transition without reasons: {rejection}"
    check = await call(session, "check_transition", {"ticket_id": ticket_id, "to_phase": "PHASE_DESIGN"})
    assert check["allowed"] is False and check["code"] == "gate_not_met", f"check_transition: {check}"
    assert "requirements_document" in check["missing_artifacts"], f"check_transition: {check}"

    # the first task: claimed (the tasks are generated on entering the phase), renewed, completed
    first = await call(session, "claim_task", {"ticket_id": ticket_id, "wait_seconds": 10})
    check_claim(first, agent, ticket_id, "analyze_requirements")
    assert first["phase_id"] == "PHASE_REQUIREMENTS", f"claim_task: {first}"
    renewed = await call(
        session,
        "heartbeat",
        {
            "task_id": first["task_id"],
            "claim_id": first["claim_id"],
            "lease_seconds": 600,
            "progress": {"note": "reading the ticket", "percent": 40, "step": "analysis"},
            "usage": {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.01},
        },
    )
    assert renewed["task_id"] == first["task_id"] and renewed["claimed_by"] == agent, f"heartbeat: {renewed}"
    assert instant(renewed["lease_expires_at"]) > instant(first["lease_expires_at"]), (
        f"heartbeat with lease_seconds 600 did not extend the lease: {renewed} after {first}"
    )
    finished = await call(
        session,
        "complete_task",
        {
            "task_id": first["task_id"],
            "claim_id": first["claim_id"],
            "status": "completed",
            "result": {
                "summary": "requirements analyzed",
                "context": {"decisions": ["agents work through MCP tools"]},
            },
            "usage": {"input_tokens": 500, "output_tokens": 100, "cost_usd": 0.005},
        },
    )
    assert finished["status"] == "completed" and finished["task_id"] == first["task_id"], f"complete_task: {finished}"
    usage = finished["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (1500, 300), (
        f"complete_task: the task's usage should add up the heartbeat's and the report's: {usage}"
    )
    # a finished task has no lease to renew
    await refused(
        session, "heartbeat", {"task_id": first["task_id"], "claim_id": first["claim_id"]}, "lease_lost"
    )

    # the second task, completed with the artifact the gate needs
    second = await call(session, "claim_task", {"ticket_id": ticket_id, "wait_seconds": 10})
    check_claim(second, agent, ticket_id, "create_requirements_doc")
    assert first["task_id"] in second["dependencies"], f"claim_task: {second['dependencies']}"
    finished = await call(
        session,
        "complete_task",
        {
            "task_id": second["task_id"],
            "claim_id": second["claim_id"],
            "status": "completed",
            "result": {"summary": "requirements document written"},
            "artifacts": [
                {
                    "artifact_type": "requirements_document",
                    "artifact_content": {
                        "content": REQUIREMENTS_TEXT,
                        "sections": ["scope", "acceptance_criteria"],
                    },
                }
            ],
        },
    )
    collected = [artifact["artifact_type"] for artifact in finished["artifacts_collected"]]
    assert collected == ["requirements_document"], f"complete_task collected {collected}"

    # auto_advance is off: the ticket waits for the move
    assert await phase_of(session, ticket_id) == "PHASE_REQUIREMENTS"
    check = await call(session, "check_transition", {"ticket_id": ticket_id, "to_phase": "PHASE_DESIGN"})
    expected = {
        "ticket_id": ticket_id,
        "from_phase": "PHASE_REQUIREMENTS",
        "to_phase": "PHASE_DESIGN",
        "allowed": True,
        "code": None,
        "reasons": [],
        "gated": True,
        "gate_phase": "PHASE_REQUIREMENTS",
        "gate_status": "passed",
        "missing_artifacts": [],
    }
    assert check == expected, f"check_transition: {check}, expected {expected}"
    await move(session, ticket_id, "PHASE_DESIGN", expected_from_phase="PHASE_REQUIREMENTS")
    assert await phase_of(session, ticket_id) == "PHASE_DESIGN"

    # a conditional move from a phase the ticket has left
    await refused(
        session, "request_transition",
        {"ticket_id": ticket_id, "to_phase": "PHASE_BLOCKED", "reason": "stale",
         "expected_from_phase": "PHASE_REQUIREMENTS"},
        "phase_mismatch",
    )
    context = await call(session, "get_context", {"ticket_id": ticket_id})
    assert context["ticket_id"] == ticket_id, f"get_context: {context}"
    return f"ticket {ticket_id} moved BACKLOG -> REQUIREMENTS -> DESIGN by tools"


async def check_invalid_arguments(session: ClientSession) -> str:
    """Arguments out of their limits are refused as invalid_request, naming the argument."""
    rejection = await refused(session, "claim_task", {"wait_seconds": 99}, "invalid_request")
    assert any("wait_seconds" in reason for reason in rejection["reasons"]), f"claim_task: {rejection}"
    rejection = await refused(session, "get_ticket", {"ticket_id": "not-a-uuid"}, "invalid_request")
    assert any("ticket_id" in reason for reason in rejection["reasons"]), f"get_ticket: {rejection}"
    await refused(session, "get_ticket", {"ticket_id": str(uuid.uuid4())}, "ticket_not_found")
    return "wait_seconds 99 and a bad ticket_id: invalid_request; an unknown ticket: ticket_not_found"


async def check_http_wrong_token() -> str:
    """Over HTTP a wrong token is refused (401) before anything else: the SDK's initialize
    fails."""
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT) as client:
        response = await client.post(
            MCP_URL,
            headers={
                "Authorization": "Bearer not-a-token",
                "Accept": "application/json, text/event-stream",
            },
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "official_client.py", "version": "1"},
                },
            },
        )
    assert response.status_code == 401, f"initialize with a wrong token: {response.status_code} {response.text}"
    assert "bearer" in response.headers.get("www-authenticate", "").lower(), (
        f"401 without a Bearer challenge: {dict(response.headers)}"
    )
    error = await refused_connection(http_session("not-a-token"))
    return f"401 with a Bearer challenge; initialize raised {error}"


async def check_stdio_wrong_token() -> str:
    """Over stdio a wrong token ends `phaseflow mcp` before it initializes: the SDK raises."""
    log = LOGS / "stdio-wrong-token.log"
    error = await refused_connection(stdio_session("not-a-token", "wrong-token"))
    stderr = log.read_text() if log.exists() else ""
    assert "PHASEFLOW_TOKEN" in stderr, f"phaseflow mcp's stderr names no PHASEFLOW_TOKEN: {stderr!r}"
    return f"phaseflow mcp ended naming PHASEFLOW_TOKEN; initialize raised {error}"


async def refused_connection(session: Any) -> str:
    """Enters a session that must fail to initialize with an MCP error; describes that error."""
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            async with session:
                pass
    except Exception as error:  # the SDK's task groups wrap it
        found = [leaf for leaf in leaves(error) if isinstance(leaf, mcp.MCPError)]
        assert found, f"initialize failed with no MCPError: {describe(error)}"
        return f"MCPError({found[0]})"
    raise AssertionError("a session with a wrong token was initialized")


async def check_waiting_claim(
    waiter: ClientSession, waiter_agent: str, mover: ClientSession, label: str
) -> str:
    """claim_task with wait_seconds on a ticket with nothing to claim returns the task that
    another agent's move creates, long before its wait is over; the waiter's session answers
    other calls meanwhile."""
    ticket_id = await create_ticket(f"MCP waiting claim ({label})")
    nothing = await call(waiter, "claim_task", {"ticket_id": ticket_id})
    assert nothing == {"task": None}, f"claim_task with nothing to claim: {nothing}"
    outcome: dict[str, Any] = {}

    async def wait_for_task() -> None:
        started = time.monotonic()
        outcome["claim"] = await call(
            waiter, "claim_task", {"ticket_id": ticket_id, "wait_seconds": 20}
        )
        outcome["elapsed"] = time.monotonic() - started

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait_for_task)
        await anyio.sleep(1)
        with anyio.fail_after(5):
            me = await call(waiter, "whoami")
        assert me["agent_id"] == waiter_agent, f"whoami during the wait: {me}"
        await anyio.sleep(1)
        assert "claim" not in outcome, f"claim_task answered before the move: {outcome}"
        await move(mover, ticket_id, "PHASE_REQUIREMENTS")
    elapsed = outcome["elapsed"]
    check_claim(outcome["claim"], waiter_agent, ticket_id, "analyze_requirements")
    assert 1.5 < elapsed < 15, f"the waiting claim answered after {elapsed:.1f} s"

    released = await call(
        waiter, "release_task",
        {"task_id": outcome["claim"]["task_id"], "claim_id": outcome["claim"]["claim_id"],
         "reason": "only a test"},
    )
    assert released["released_by"] == waiter_agent and released["reason"] == "only a test", f"release_task: {released}"
    return f"claimed {outcome['claim']['task_type']} {elapsed:.1f} s into a 20 s wait"


async def check_cancelled_wait(waiter: ClientSession, mover: ClientSession, label: str) -> str:
    """A waiting claim_task that the client cancels claims nothing, not even when a task
    becomes claimable afterwards."""
    ticket_id = await create_ticket(f"MCP cancelled wait ({label})")
    with anyio.move_on_after(1.5) as waiting:
        answer = await waiter.call_tool("claim_task", {"ticket_id": ticket_id, "wait_seconds": 20})
    assert waiting.cancelled_caught, f"claim_task answered before it was cancelled: {answer}"
    await anyio.sleep(0.5)
    await move(mover, ticket_id, "PHASE_REQUIREMENTS")
    # far longer than a woken waiter takes to claim (about 0.1 s in the waiting checks)
    await anyio.sleep(2)
    page = await call(mover, "list_tasks", {"ticket_id": ticket_id})
    claimed = [task for task in page["tasks"] if task["status"] != "pending"]
    assert len(page["tasks"]) == 2 and not claimed, (
        f"after the cancelled claim_task the ticket's tasks are {page['tasks']}"
    )
    me = await call(waiter, "whoami")
    assert me["live_claims"] == [], f"the cancelled claim_task left claims: {me['live_claims']}"
    return "nothing claimed after the cancel; the session still answers"


async def check_default_client(client: Client, agent: str) -> str:
    """The SDK's `Client` as it comes connects (it negotiates the protocol version itself) and
    calls tools."""
    version = client.protocol_version
    assert version in (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS), f"protocol version {version}"
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert names == TOOLS, f"tools/list: {sorted(names)}"
    me = await call(client.session, "whoami")
    assert me["agent_id"] == agent, f"whoami: {me}"
    await refused(client.session, "claim_task", {"wait_seconds": 99}, "invalid_request")
    return f"protocol {version}; tools/list, whoami and a refusal"


async def check_stdio_session(session: ClientSession, agent: str) -> str:
    """Over stdio the same session reads the workflow and the tasks it could claim."""
    me = await call(session, "whoami")
    assert me["agent_id"] == agent, f"whoami: {me}"
    workflow = await call(session, "get_workflow")
    phases = [phase["phase_id"] for phase in workflow["phases"]]
    for phase in ("PHASE_BACKLOG", "PHASE_REQUIREMENTS", "PHASE_DESIGN", "PHASE_DONE"):
        assert phase in phases, f"get_workflow: no {phase} in {phases}"
    design = next(phase for phase in workflow["phases"] if phase["phase_id"] == "PHASE_DESIGN")
    assert "design_document" in design["gate"]["required_artifacts"], f"get_workflow: {design['gate']}"

    # the ticket the HTTP agent took to PHASE_DESIGN has its first design task claimable
    listed: list[dict] = []
    for _ in range(20):
        page = await call(session, "list_tasks", {"claimable": True, "task_type": "design_architecture"})
        listed = page["tasks"]
        if listed:
            break
        await anyio.sleep(0.5)
    assert listed, "list_tasks claimable=true: no design_architecture task"
    for task in listed:
        assert task["status"] == "pending", f"list_tasks claimable=true answered {task}"
    # a task waiting for another is not claimable
    page = await call(session, "list_tasks", {"claimable": True, "task_type": "create_design_doc"})
    assert page["tasks"] == [], f"list_tasks claimable=true answered a blocked task: {page['tasks']}"
    return f"whoami, get_workflow ({len(phases)} phases), list_tasks claimable ({len(listed)} task)"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class Run:
    """Runs checks in order, one line each; the first failure ends the run."""

    def __init__(self) -> None:
        self.passed = 0

    async def check(self, name: str, body: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                detail = await body()
        except Exception as error:
            print(f"FAIL {name}: {describe(error)}", flush=True)
            if not isinstance(error, AssertionError):
                traceback.print_exception(error)
            raise CheckFailed(name) from error
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)


def describe(error: BaseException) -> str:
    """An error as one line."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    return f"{type(error).__name__}: {error}" if not isinstance(error, AssertionError) else str(error)


async def main(run: Run) -> None:
    # ClientSession with the `initialize` handshake (protocol 2025-11-25)
    async with http_session(TOKEN_A) as http_a, stdio_session(TOKEN_B, AGENT_B) as stdio_b:
        await run.check("http: tools/list and prompts", lambda: check_listing(http_a))
        await run.check("stdio: tools/list and prompts", lambda: check_listing(stdio_b))
        await run.check("http: whoami", lambda: check_whoami(http_a, AGENT_A))
        await run.check("stdio: whoami", lambda: check_whoami(stdio_b, AGENT_B))
        await run.check(
            "http: a ticket from BACKLOG to DESIGN by tool calls",
            lambda: check_ticket_to_design(http_a, AGENT_A),
        )
        await run.check("http: invalid arguments refused", lambda: check_invalid_arguments(http_a))
        await run.check("stdio: invalid arguments refused", lambda: check_invalid_arguments(stdio_b))
        await run.check("http: a wrong token is refused", check_http_wrong_token)
        await run.check("stdio: a wrong token is refused", check_stdio_wrong_token)
        await run.check(
            "http: claim_task waits for a task (moved over stdio)",
            lambda: check_waiting_claim(http_a, AGENT_A, stdio_b, "http"),
        )
        await run.check(
            "stdio: claim_task waits for a task (moved over http)",
            lambda: check_waiting_claim(stdio_b, AGENT_B, http_a, "stdio"),
        )
        await run.check(
            "stdio: a cancelled waiting claim_task claims nothing",
            lambda: check_cancelled_wait(stdio_b, http_a, "stdio"),
        )
        await run.check(
            "http (handshake): a cancelled waiting claim_task claims nothing",
            lambda: check_cancelled_wait(http_a, stdio_b, "http"),
        )
        await run.check(
            "stdio: whoami, get_workflow, list_tasks in one session",
            lambda: check_stdio_session(stdio_b, AGENT_B),
        )

    # The SDK's high-level Client as it comes: it negotiates the newest protocol both speak. Over
    # HTTP it cancels a call by closing its POST there (with the handshake, above, it sends
    # notifications/cancelled on a POST of its own instead).
    async with (
        default_client("http", TOKEN_A, AGENT_A) as http_a,
        default_client("stdio", TOKEN_B, AGENT_B) as stdio_b,
    ):
        await run.check("http: the SDK's default Client", lambda: check_default_client(http_a, AGENT_A))
        await run.check("stdio: the SDK's default Client", lambda: check_default_client(stdio_b, AGENT_B))
        await run.check(
            f"http ({http_a.protocol_version}): a cancelled waiting claim_task claims nothing",
            lambda: check_cancelled_wait(http_a.session, stdio_b.session, "http"),
        )


def entry() -> int:
    run = Run()
    print(f"mcp {mcp_version()} client; HTTP {MCP_URL}; stdio {PHASEFLOW} mcp", flush=True)
    try:
        anyio.run(main, run)
    except BaseException as error:  # noqa: BLE001 - reported, and the run fails
        if not any(isinstance(leaf, CheckFailed) for leaf in leaves(error)):
            print(f"FAIL setup: {describe(error)}", flush=True)
            traceback.print_exception(error)
        print(f"{run.passed} passed, 1 failed", flush=True)
        return 1
    print(f"{run.passed} passed, 0 failed", flush=True)
    return 0


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions in an exception group (task groups wrap what their tasks raise)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def mcp_version() -> str:
    from importlib.metadata import version

    return version("mcp")


if __name__ == "__main__":
    sys.exit(entry())
