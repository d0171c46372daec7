//! A ticket's accumulated knowledge: each phase's context, aggregated from its completed tasks,
//! artifacts and gate, and a token-bounded summary of the ticket and all of it.
//!
//! Aggregation is tolerant: agents' task results are free-form JSON, and a malformed part is kept
//! as well as it can be rather than failing the phase. Several tasks often report the same
//! decision; a phase keeps it once. The summary is what agents read first, so it opens with the
//! ticket itself and must never exceed its token budget, whatever the input. This module must not
//! store anything or read the clock: times are supplied by the caller.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tiktoken_rs::CoreBPE;

use super::gate::{GateEvaluation, GateStatus};
use super::phase::Phase;
use super::ticket::{Priority, TaskStatus};

/// Which way phase contexts and summaries are built. Callers that keep a stored context while
/// its sources are unchanged include it in their fingerprint, so that a context or summary built
/// an older way (before summaries opened with the ticket, or before entries were deduplicated)
/// is rebuilt rather than kept. Raise it whenever either changes what it produces.
pub const CONTEXT_FORMAT_VERSION: u32 = 2;

/// What one completed task contributed to its phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskContextEntry {
    /// Which task this was.
    pub task_type: String,
    /// The agent's one-line account of the work, if it gave one.
    pub summary: Option<String>,
    /// Whatever structured outputs the agent reported, kept verbatim.
    pub outputs: Option<Value>,
}

/// An artifact collected for the phase, by reference: its content lives with the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// What kind of artifact it is (`design_document`).
    pub artifact_type: String,
    /// Where it lives, when the submitter said (`docs/design.md`).
    pub artifact_path: Option<String>,
}

/// The phase's latest gate verdict, as far as later phases care.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    /// Passed, failed or pending.
    pub gate_status: GateStatus,
    /// Why it did not pass (empty when it did).
    pub blocking_reasons: Vec<String>,
}

impl From<&GateEvaluation> for GateOutcome {
    fn from(evaluation: &GateEvaluation) -> Self {
        Self {
            gate_status: evaluation.status,
            blocking_reasons: evaluation.blocking_reasons.clone(),
        }
    }
}

/// Everything the ticket learned in one phase; stored under `<phase>_phase` in `full_context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseContext {
    /// The phase this context belongs to.
    pub phase_id: Phase,
    /// The phase's completed tasks, in the order given.
    #[serde(default)]
    pub tasks: Vec<TaskContextEntry>,
    /// Decisions reported by tasks; what later phases most need to respect.
    #[serde(default)]
    pub decisions: Vec<Value>,
    /// Risks reported by tasks; what later phases most need to watch.
    #[serde(default)]
    pub risks: Vec<Value>,
    /// Anything else the agents wanted remembered.
    #[serde(default)]
    pub notes: Vec<Value>,
    /// The artifacts collected for the phase.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRef>,
    /// The latest gate verdict, if the gate was ever validated.
    #[serde(default)]
    pub gate: Option<GateOutcome>,
    /// RFC 3339 time of aggregation, supplied by the caller; newer phases sort first in the
    /// summary.
    pub aggregated_at: String,
}

/// A finished task as stored: its type, status and the `result` object agents reported (summary,
/// outputs, context{decisions,risks,notes}, artifacts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRecord<'a> {
    /// Which task it is.
    pub task_type: &'a str,
    /// Only completed tasks contribute to the context.
    pub status: TaskStatus,
    /// The reported result, if any.
    pub result: Option<&'a Value>,
}

/// Builds a phase's context from its completed tasks (only status Completed counts; tasks in
/// given order), its collected artifacts (type + path) and its latest gate outcome. Malformed
/// result parts (e.g. decisions not an array) are tolerated: a non-array value is kept as a single
/// entry; missing parts are empty. A decision, risk or note several tasks reported alike (the
/// same JSON value) is kept once, where it first appeared.
pub fn aggregate_phase(
    phase: Phase,
    tasks: &[TaskRecord<'_>],
    artifacts: &[ArtifactRef],
    gate: Option<GateOutcome>,
    aggregated_at: String,
) -> PhaseContext {
    let mut context = PhaseContext {
        phase_id: phase,
        tasks: Vec::new(),
        decisions: Vec::new(),
        risks: Vec::new(),
        notes: Vec::new(),
        artifacts: artifacts.to_vec(),
        gate,
        aggregated_at,
    };
    for task in tasks.iter().filter(|t| t.status == TaskStatus::Completed) {
        let result = task.result.filter(|r| !r.is_null());
        let (summary, outputs) = match result {
            Some(Value::Object(fields)) => (
                fields.get("summary").and_then(text_of),
                fields.get("outputs").filter(|o| !o.is_null()).cloned(),
            ),
            // A bare string is the agent's summary; any other bare value, its output.
            Some(Value::String(text)) => (Some(text.clone()), None),
            Some(other) => (None, Some(other.clone())),
            None => (None, None),
        };
        context.tasks.push(TaskContextEntry {
            task_type: task.task_type.to_owned(),
            summary,
            outputs,
        });

        let Some(Value::Object(fields)) = result else {
            continue;
        };
        match fields.get("context") {
            Some(Value::Object(parts)) => {
                // The contract nests the parts under `context`; parts given at the top level of
                // the result are accepted too, as the obvious mistake to forgive.
                let part = |name: &str| parts.get(name).or_else(|| fields.get(name));
                extend_entries(&mut context.decisions, part("decisions"));
                extend_entries(&mut context.risks, part("risks"));
                extend_entries(&mut context.notes, part("notes"));
            }
            other => {
                extend_entries(&mut context.decisions, fields.get("decisions"));
                extend_entries(&mut context.risks, fields.get("risks"));
                extend_entries(&mut context.notes, fields.get("notes"));
                // A `context` that is not an object is still something the agent said.
                extend_entries(&mut context.notes, other);
            }
        }
    }
    for entries in [
        &mut context.decisions,
        &mut context.risks,
        &mut context.notes,
    ] {
        keep_first_of_equal_values(entries);
    }
    context
}

/// Merges one phase's context into the ticket's full context (a JSON object keyed
/// `<phase>_phase`), replacing only that key.
pub fn merge_phase(full_context: &mut Map<String, Value>, phase_context: &PhaseContext) {
    // Invariant: a PhaseContext holds only strings, sequences, enums and JSON values, none of
    // which can fail to serialize to a `Value`.
    let value = serde_json::to_value(phase_context).expect("a PhaseContext always serializes");
    full_context.insert(phase_context.phase_id.context_key(), value);
}

/// The ticket a summary is about, which it opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketBrief<'a> {
    /// The ticket's title, shown in full whenever the budget allows.
    pub title: &'a str,
    /// How urgent the ticket is, shown beside the title.
    pub priority: Priority,
    /// What the ticket asks for; as much of it is shown as fits.
    pub description: &'a str,
}

/// A digest of a ticket and its context, and its exact size in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The digest itself: a `# <title> (priority <P>)` line and the description, then one
    /// `## <phase>` section per phase, newest first.
    pub text: String,
    /// The cl100k_base token count of `text`, exactly.
    pub tokens: usize,
}

/// A readable digest of the ticket and of every phase in `full_context`, never more than
/// `max_tokens` cl100k_base tokens.
///
/// It opens with the ticket, so it is never empty even when no phase has any content yet: a
/// `# <title> (priority <P>)` line, then the description on one line. The title line comes first
/// of all; when it does not fit, the title is cut with "…" (keeping the priority while a few
/// tokens of title fit beside it), so only a budget of a token or two, too small for even that,
/// gives an empty summary. The description is guaranteed up to half of the room the title leaves
/// and takes whatever the phases leave beyond that; it is cut with "…" when it does not fit, or
/// left out when only a few tokens remain for it.
///
/// When the phases do not all fit, decisions and risks are kept first (newest phases first), then
/// gate outcomes, task summaries, notes and artifacts; entries of a line are cut from its end, an
/// entry too long for the room left is truncated with "…", and a last line says how many entries
/// were left out when it fits. Decisions, risks and notes that read alike within a phase are shown
/// once. Entries that are not well-formed phase contexts are summarized as far as they can be
/// read, or skipped.
pub fn summarize(
    ticket: &TicketBrief<'_>,
    full_context: &Map<String, Value>,
    max_tokens: usize,
) -> Summary {
    // No entry can usefully be longer than the whole budget; cutting entries to a length that
    // surely holds `max_tokens` tokens bounds the work on huge inputs.
    let entry_chars = max_tokens.saturating_mul(16).saturating_add(64);
    let title = title_line(ticket, entry_chars, max_tokens);
    // What is left once the title line and its line break are paid for.
    let room = max_tokens.saturating_sub(count_tokens(&title) + 1);
    let description = clean(ticket.description, entry_chars);
    let description_share = if description.is_empty() {
        0
    } else {
        (count_tokens(&description) + 1).min(room / 2)
    };

    let mut sections: Vec<Section> = full_context
        .iter()
        .filter_map(|(key, value)| Section::read(key, value, entry_chars))
        .collect();
    sections.sort_by_key(|s| Reverse(s.recency));

    let plan = Plan::choose(&sections, room - description_share);
    let mut header = title;
    if let Some(line) = description_line(&description, room.saturating_sub(plan.cost())) {
        header.push('\n');
        header.push_str(&line);
    }
    plan.into_summary(&sections, header, max_tokens)
}

/// Counts `text` in cl100k_base tokens, treating special-token text like `<|endoftext|>` as
/// ordinary text (agents' input must not be able to smuggle in control tokens).
///
/// Exact for any text without a run of more than 4096 characters that are all blank or all
/// non-blank. Longer runs are counted in pieces of that size (so the count may be off by about a
/// token per piece), because the tokenizer takes quadratic time on them and fails on very long
/// ones; summaries never contain such runs, so their counts are always exact.
pub fn count_tokens(text: &str) -> usize {
    let bpe = tokenizer();
    let mut total = 0;
    let mut start = 0;
    let mut run = 0;
    let mut run_is_blank = false;
    for (at, c) in text.char_indices() {
        let blank = c.is_whitespace();
        if run > 0 && blank == run_is_blank {
            run += 1;
        } else {
            run = 1;
            run_is_blank = blank;
        }
        if run > TOKENIZER_RUN_CHARS {
            total += bpe.encode_ordinary(&text[start..at]).len();
            start = at;
            run = 1;
        }
    }
    if start < text.len() {
        total += bpe.encode_ordinary(&text[start..]).len();
    }
    total
}

fn tokenizer() -> &'static CoreBPE {
    static TOKENIZER: OnceLock<CoreBPE> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        // Invariant: the cl100k_base ranks are compiled into tiktoken-rs, so loading them can
        // only fail if that crate is broken.
        tiktoken_rs::cl100k_base().expect("the bundled cl100k_base tokenizer loads")
    })
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn extend_entries(target: &mut Vec<Value>, part: Option<&Value>) {
    match part {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => target.extend(items.iter().filter(|i| !i.is_null()).cloned()),
        Some(other) => target.push(other.clone()),
    }
}

/// Drops every value equal to an earlier one. Values are compared by their JSON text, which is
/// the same for equal values because serde_json keeps object keys sorted (its `preserve_order`
/// feature is off); hashing the text keeps this linear however many entries a phase has.
fn keep_first_of_equal_values(values: &mut Vec<Value>) {
    let mut seen = HashSet::new();
    values.retain(|value| seen.insert(value.to_string()));
}

// ---------------------------------------------------------------------------------------------
// Summary internals.

/// The kinds of line in a section, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Line {
    Decisions,
    Risks,
    GateBlockers,
    Tasks,
    Notes,
    Artifacts,
}

impl Line {
    const ALL: [Line; 6] = [
        Line::Decisions,
        Line::Risks,
        Line::GateBlockers,
        Line::Tasks,
        Line::Notes,
        Line::Artifacts,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Line::Decisions => "Decisions: ",
            Line::Risks => "Risks: ",
            Line::GateBlockers => "Gate blockers: ",
            Line::Tasks => "Tasks: ",
            Line::Notes => "Notes: ",
            Line::Artifacts => "Artifacts: ",
        }
    }
}

/// What is kept first when not everything fits: each tier over all sections, newest first.
const TIERS: [&[Line]; 5] = [
    &[Line::Decisions, Line::Risks],
    &[Line::GateBlockers],
    &[Line::Tasks],
    &[Line::Notes],
    &[Line::Artifacts],
];

/// The most entries of one line (one phase's artifacts, say) the summary considers: the newest
/// ones. The rest only count as omitted, so summarizing stays quick however much a phase
/// collected.
const MAX_ENTRIES_PER_LINE: usize = 32;

/// The longest run of non-blank characters kept in an entry.
const RUN_CHARS: usize = 200;

/// The longest phase name or gate status shown in a heading.
const NAME_CHARS: usize = 100;

/// Beyond this many characters without a change between blank and non-blank, text is tokenized
/// in pieces: the tokenizer is quadratic in such runs and fails on very long ones.
const TOKENIZER_RUN_CHARS: usize = 4096;

/// The smallest room worth filling with a truncated entry; less would be mostly "…".
const MIN_TRUNCATED_TOKENS: usize = 6;

/// One entry of a line, with its token cost measured once.
#[derive(Debug)]
struct Item {
    text: String,
    /// Tokens of the entry alone (as the first of its line).
    first_cost: usize,
    /// Tokens of "; " followed by the entry (as a later one).
    next_cost: usize,
}

impl Item {
    fn new(text: String) -> Self {
        let first_cost = count_tokens(&text);
        let next_cost = count_tokens(&format!("; {text}"));
        Self {
            text,
            first_cost,
            next_cost,
        }
    }
}

/// One phase of the full context, read tolerantly and rendered into entries.
#[derive(Debug)]
struct Section {
    heading: String,
    heading_cost: usize,
    /// Whether the heading carries a gate outcome (an entry of its own for counting).
    has_gate: bool,
    /// Sort key: newest aggregation first; ties broken by later position in the sequence.
    recency: (Option<(i64, u32)>, usize),
    lines: [Vec<Item>; 6],
    /// Older entries left out before counting (beyond `MAX_ENTRIES_PER_LINE` per line).
    dropped: usize,
}

impl Section {
    fn read(key: &str, value: &Value, entry_chars: usize) -> Option<Section> {
        let fields = value.as_object()?;
        let phase = fields
            .get("phase_id")
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<Phase>().ok())
            .or_else(|| Phase::from_context_key(key));
        let name = match phase {
            Some(phase) => phase.short_name().to_owned(),
            None => clean(key.strip_suffix("_phase").unwrap_or(key), NAME_CHARS),
        };

        let gate = fields.get("gate").and_then(Value::as_object);
        let gate_status = gate.map(|g| match g.get("gate_status") {
            Some(Value::String(status)) => clean(status, NAME_CHARS),
            Some(other) if !other.is_null() => clean(&other.to_string(), NAME_CHARS),
            _ => "unknown".to_owned(),
        });
        let heading = match &gate_status {
            Some(status) => format!("## {name} (gate {status})"),
            None => format!("## {name}"),
        };

        let rank = phase.map_or(0, |p| {
            Phase::ALL.iter().position(|q| *q == p).unwrap_or(0) + 1
        });
        let time = fields
            .get("aggregated_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);

        let mut lines: [Vec<Item>; 6] = Default::default();
        let mut dropped = 0;
        for line in Line::ALL {
            let entries: Vec<String> = match line {
                Line::Decisions => entries_of(fields.get("decisions"), render_entry, entry_chars),
                Line::Risks => entries_of(fields.get("risks"), render_entry, entry_chars),
                Line::GateBlockers => entries_of(
                    gate.and_then(|g| g.get("blocking_reasons")),
                    render_entry,
                    entry_chars,
                ),
                Line::Tasks => entries_of(fields.get("tasks"), render_task, entry_chars),
                Line::Notes => entries_of(fields.get("notes"), render_entry, entry_chars),
                Line::Artifacts => {
                    entries_of(fields.get("artifacts"), render_artifact, entry_chars)
                }
            };
            let mut entries = entries;
            if matches!(line, Line::Decisions | Line::Risks | Line::Notes) {
                let mut seen = HashSet::new();
                entries.retain(|entry| seen.insert(entry.clone()));
            }
            if entries.len() > MAX_ENTRIES_PER_LINE {
                let excess = entries.len() - MAX_ENTRIES_PER_LINE;
                dropped += excess;
                entries.drain(..excess);
            }
            lines[line as usize] = entries.into_iter().map(Item::new).collect();
        }

        let has_gate = gate_status.is_some();
        if !has_gate && lines.iter().all(Vec::is_empty) {
            return None;
        }
        Some(Section {
            heading_cost: count_tokens(&heading),
            heading,
            has_gate,
            recency: (time, rank),
            lines,
            dropped,
        })
    }

    fn items(&self, line: Line) -> &[Item] {
        &self.lines[line as usize]
    }

    /// Every entry this section could show, its gate outcome included.
    fn item_count(&self) -> usize {
        usize::from(self.has_gate) + self.lines.iter().map(Vec::len).sum::<usize>() + self.dropped
    }

    /// What showing all of this section would cost, newlines included.
    fn full_cost(&self) -> usize {
        let mut cost = self.heading_cost + 1;
        for line in Line::ALL {
            let items = self.items(line);
            if let Some((first, rest)) = items.split_first() {
                cost += count_tokens(line.prefix())
                    + first.first_cost
                    + rest.iter().map(|i| i.next_cost).sum::<usize>()
                    + 1;
            }
        }
        cost
    }
}

fn entries_of(
    value: Option<&Value>,
    render: fn(&Value) -> Option<String>,
    max_chars: usize,
) -> Vec<String> {
    let rendered: Vec<Option<String>> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(render).collect(),
        Some(other) => vec![render(other)],
    };
    rendered
        .into_iter()
        .flatten()
        .map(|entry| clean(&entry, max_chars))
        .filter(|e| !e.is_empty())
        .collect()
}

fn render_entry(value: &Value) -> Option<String> {
    text_of(value)
}

fn render_task(value: &Value) -> Option<String> {
    let Some(task_type) = value.get("task_type").and_then(Value::as_str) else {
        return render_entry(value);
    };
    Some(match value.get("summary").and_then(text_of) {
        Some(summary) if !summary.trim().is_empty() => {
            format!("{task_type}: {summary}")
        }
        _ => task_type.to_owned(),
    })
}

fn render_artifact(value: &Value) -> Option<String> {
    let Some(artifact_type) = value.get("artifact_type").and_then(Value::as_str) else {
        return render_entry(value);
    };
    Some(match value.get("artifact_path").and_then(Value::as_str) {
        Some(path) if !path.trim().is_empty() => format!("{artifact_type} ({path})"),
        _ => artifact_type.to_owned(),
    })
}

/// Makes an entry fit on one line and keeps it cheap to tokenize: whitespace runs (line breaks
/// included) become one space, a run of more than [`RUN_CHARS`] characters without a space is cut
/// with "…" (such runs are never prose, and tokenizing them costs quadratic time), and the whole
/// is cut with "…" after `max_chars` characters.
fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0;
    let mut run = 0;
    let mut space_pending = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space_pending = chars > 0;
            run = 0;
            continue;
        }
        if run > RUN_CHARS {
            continue;
        }
        if chars + usize::from(space_pending) >= max_chars {
            out.push('…');
            break;
        }
        if space_pending {
            out.push(' ');
            chars += 1;
            space_pending = false;
        }
        run += 1;
        if run > RUN_CHARS {
            out.push('…');
        } else {
            out.push(c);
        }
        chars += 1;
    }
    out
}

/// One line chosen for the summary.
#[derive(Debug)]
struct Chosen {
    section: usize,
    /// `None` for the section heading.
    line: Option<Line>,
    text: String,
    /// Estimated tokens, newline included.
    cost: usize,
}

/// The lines chosen for the summary, in the order they were chosen (most important first).
#[derive(Debug, Default)]
struct Plan {
    chosen: Vec<Chosen>,
    omitted: usize,
}

impl Plan {
    fn choose(sections: &[Section], max_tokens: usize) -> Plan {
        let mut plan = Plan {
            omitted: sections.iter().map(|section| section.dropped).sum(),
            ..Plan::default()
        };
        let total_items: usize = sections.iter().map(Section::item_count).sum();
        let full_cost: usize = sections.iter().map(Section::full_cost).sum();
        // Room for the "(… N more items omitted)" line, kept only when something must go and the
        // budget is large enough that the notice does not crowd out the content itself.
        let reserve = if full_cost > max_tokens || plan.omitted > 0 {
            count_tokens(&omitted_notice(total_items)) + 1
        } else {
            0
        };
        let budget = if reserve * 4 <= max_tokens {
            max_tokens - reserve
        } else {
            max_tokens
        };

        let mut used = 0;
        let mut heading_shown = vec![false; sections.len()];
        for (tier_index, tier) in TIERS.iter().enumerate() {
            for (index, section) in sections.iter().enumerate() {
                if tier_index == 1
                    && section.has_gate
                    && !heading_shown[index]
                    && used + section.heading_cost < budget
                {
                    // The heading carries the gate outcome.
                    plan.push_heading(sections, index, &mut heading_shown, &mut used);
                }
                for &line in tier.iter() {
                    let items = section.items(line);
                    if items.is_empty() {
                        continue;
                    }
                    let heading_cost = if heading_shown[index] {
                        0
                    } else {
                        section.heading_cost + 1
                    };
                    let room = budget.saturating_sub(used + heading_cost);
                    let (text, cost, shown) = pack(line, items, room);
                    plan.omitted += items.len() - shown;
                    if shown == 0 {
                        continue;
                    }
                    if !heading_shown[index] {
                        plan.push_heading(sections, index, &mut heading_shown, &mut used);
                    }
                    used += cost;
                    plan.chosen.push(Chosen {
                        section: index,
                        line: Some(line),
                        text,
                        cost,
                    });
                }
            }
        }
        // Entries were counted line by line; gate outcomes live in headings.
        plan.omitted += sections
            .iter()
            .zip(&heading_shown)
            .filter(|(section, shown)| section.has_gate && !**shown)
            .count();
        plan
    }

    fn push_heading(
        &mut self,
        sections: &[Section],
        index: usize,
        heading_shown: &mut [bool],
        used: &mut usize,
    ) {
        let section = &sections[index];
        heading_shown[index] = true;
        *used += section.heading_cost + 1;
        self.chosen.push(Chosen {
            section: index,
            line: None,
            text: section.heading.clone(),
            cost: section.heading_cost + 1,
        });
    }

    /// What the chosen lines are estimated to cost, with the omission notice when something was
    /// left out.
    fn cost(&self) -> usize {
        let notice = if self.omitted > 0 {
            count_tokens(&omitted_notice(self.omitted)) + 1
        } else {
            0
        };
        self.chosen.iter().map(|c| c.cost).sum::<usize>() + notice
    }

    /// Renders `header` and then the chosen lines in display order, and makes the budget hold
    /// exactly. The header was made to fit on its own, so lines are given back before it is ever
    /// touched.
    fn into_summary(mut self, sections: &[Section], header: String, max_tokens: usize) -> Summary {
        let header_cost = if header.is_empty() {
            0
        } else {
            count_tokens(&header) + 1
        };
        let used: usize = header_cost + self.chosen.iter().map(|c| c.cost).sum::<usize>();
        let notice = (self.omitted > 0).then(|| omitted_notice(self.omitted));
        let mut notice = notice.filter(|n| used + count_tokens(n) < max_tokens);

        loop {
            let text = self.render(&header, notice.as_deref());
            let tokens = count_tokens(&text);
            if tokens <= max_tokens {
                return Summary { text, tokens };
            }
            // Estimates are per line; joined text can tokenize slightly differently. Give back
            // the least important thing until the whole fits.
            let over = tokens - max_tokens;
            if notice.take().is_some() {
                continue;
            }
            let Some(last) = self.chosen.last_mut() else {
                // Only the header is left, and it was made to fit: unreachable, but should it
                // ever not fit, cut it rather than loop.
                let (text, tokens) = truncate_to_tokens(&header, max_tokens);
                return Summary { text, tokens };
            };
            if last.line.is_some() && last.cost > over + MIN_TRUNCATED_TOKENS {
                let (text, cost) = truncate_to_tokens(&last.text, last.cost - 1 - over);
                last.text = text;
                last.cost = cost + 1;
                if cost > 0 {
                    continue;
                }
            }
            let removed = self.chosen.pop();
            // A heading stays only while something of its section remains, unless it carries a
            // gate outcome (then it was chosen for its own sake and goes in its own turn).
            if let Some(Chosen {
                section,
                line: Some(_),
                ..
            }) = removed
            {
                let content_left = self
                    .chosen
                    .iter()
                    .any(|c| c.section == section && c.line.is_some());
                if !content_left && !sections[section].has_gate {
                    self.chosen.retain(|c| c.section != section);
                }
            }
        }
    }

    fn render(&self, header: &str, notice: Option<&str>) -> String {
        let mut order: Vec<&Chosen> = self.chosen.iter().filter(|c| !c.text.is_empty()).collect();
        order.sort_by_key(|c| (c.section, c.line));
        let mut lines: Vec<&str> = Some(header).filter(|h| !h.is_empty()).into_iter().collect();
        lines.extend(order.iter().map(|c| c.text.as_str()));
        if let Some(notice) = notice {
            lines.push(notice);
        }
        lines.join("\n")
    }
}

fn omitted_notice(count: usize) -> String {
    format!("(… {count} more items omitted)")
}

/// The summary's first line, `# <title> (priority <P>)`, at most `max_tokens` tokens. When it is
/// too long, the title is cut with "…" so that the priority still fits beside it; when not even
/// [`MIN_TRUNCATED_TOKENS`] of title would, the line itself is cut from its end.
fn title_line(ticket: &TicketBrief<'_>, max_chars: usize, max_tokens: usize) -> String {
    let title = clean(ticket.title, max_chars);
    let heading = if title.is_empty() {
        "#".to_owned()
    } else {
        format!("# {title}")
    };
    let priority = format!(" (priority {})", ticket.priority.as_str());
    let line = format!("{heading}{priority}");
    if count_tokens(&line) <= max_tokens {
        return line;
    }
    let mut room = max_tokens.saturating_sub(count_tokens(&priority));
    while room >= MIN_TRUNCATED_TOKENS {
        let (cut, _) = truncate_to_tokens(&heading, room);
        let candidate = format!("{cut}{priority}");
        let cost = count_tokens(&candidate);
        if cost <= max_tokens {
            return candidate;
        }
        room -= (cost - max_tokens).min(room);
    }
    truncate_to_tokens(&line, max_tokens).0
}

/// The description as the summary's second line, when `room` tokens (its line break included)
/// hold it or a fair part of it cut with "…"; `None` otherwise.
fn description_line(description: &str, room: usize) -> Option<String> {
    if description.is_empty() || room < 2 {
        return None;
    }
    let (text, _) = truncate_to_tokens(description, room - 1);
    if text == description {
        return Some(text);
    }
    (room > MIN_TRUNCATED_TOKENS && !text.is_empty() && text != "…").then_some(text)
}

/// Fills `room` tokens (newline included) with a line's prefix and as many whole entries as fit;
/// when the next entry does not fit but there is still fair room, it goes in truncated. Returns
/// the line, its estimated cost and how many entries it shows.
fn pack(line: Line, items: &[Item], room: usize) -> (String, usize, usize) {
    let prefix = line.prefix();
    let mut cost = count_tokens(prefix) + 1;
    if cost >= room {
        return (String::new(), 0, 0);
    }
    let mut text = prefix.to_owned();
    let mut shown = 0;
    for (index, item) in items.iter().enumerate() {
        let (piece_cost, separator) = if index == 0 {
            (item.first_cost, "")
        } else {
            (item.next_cost, "; ")
        };
        if cost + piece_cost <= room {
            text.push_str(separator);
            text.push_str(&item.text);
            cost += piece_cost;
            shown += 1;
            continue;
        }
        let left = room - cost;
        if left >= MIN_TRUNCATED_TOKENS {
            let (piece, piece_cost) =
                truncate_to_tokens(&format!("{separator}{}", item.text), left);
            if piece_cost > 0 && piece.trim_start_matches("; ") != "…" {
                text.push_str(&piece);
                cost += piece_cost;
                shown += 1;
            }
        }
        break;
    }
    if shown == 0 {
        return (String::new(), 0, 0);
    }
    (text, cost, shown)
}

/// The longest start of `text`, cut at a token boundary, that with "…" appended is at most
/// `max_tokens` tokens; `text` itself when it already fits. Returns the text and its token count.
fn truncate_to_tokens(text: &str, max_tokens: usize) -> (String, usize) {
    let bpe = tokenizer();
    let tokens = bpe.encode_ordinary(text);
    if tokens.len() <= max_tokens {
        return (text.to_owned(), tokens.len());
    }
    let mut keep = max_tokens.saturating_sub(1);
    while keep > 0 {
        // every token was just encoded by the same tokenizer, so every one decodes
        let bytes = bpe.decode_bytes(&tokens[..keep]).unwrap_or_default();
        // A token may end inside a multi-byte character: keep only whole characters.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(all) => all,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        };
        let candidate = format!("{valid}…");
        let cost = count_tokens(&candidate);
        if cost <= max_tokens {
            return (candidate, cost);
        }
        keep = keep.saturating_sub((cost - max_tokens).max(1));
    }
    (String::new(), 0)
}

/// Parses the RFC 3339 subset that timestamps are written in, into seconds and nanoseconds since
/// the Unix epoch, so that differently formatted times still order correctly. `None` if it is not
/// such a time (such sections sort as oldest).
fn parse_rfc3339(text: &str) -> Option<(i64, u32)> {
    let b = text.trim().as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos: u32 = 0;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 9 {
                nanos = nanos * 10 + u32::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..9 {
            nanos *= 10;
        }
    }
    let offset_seconds = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let (oh, om) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
            let offset = oh * 3600 + om * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some((seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The ticket the summaries in these tests are about.
    const TICKET: TicketBrief<'static> = TicketBrief {
        title: "Single sign-on",
        priority: Priority::High,
        description: "Log in with the company IdP",
    };

    /// The lines every summary of [`TICKET`] opens with, when they fit.
    const TICKET_HEADER: &str = "# Single sign-on (priority HIGH)\nLog in with the company IdP";

    fn record<'a>(task_type: &'a str, status: TaskStatus, result: &'a Value) -> TaskRecord<'a> {
        TaskRecord {
            task_type,
            status,
            result: Some(result),
        }
    }

    fn design_context() -> PhaseContext {
        let architecture = json!({
            "summary": "Chose a hexagonal layout",
            "outputs": {"modules": 4},
            "context": {
                "decisions": ["Use Postgres for state"],
                "risks": ["RabbitMQ outage stalls progress"],
                "notes": ["Consider sharding later"]
            }
        });
        let doc = json!({"summary": "Wrote docs/design.md", "context": {"decisions": "One queue per handler"}});
        let unfinished = json!({"summary": "never shown"});
        aggregate_phase(
            Phase::Design,
            &[
                record("design_architecture", TaskStatus::Completed, &architecture),
                record("create_design_doc", TaskStatus::Completed, &doc),
                record("review", TaskStatus::Pending, &unfinished),
            ],
            &[ArtifactRef {
                artifact_type: "design_document".into(),
                artifact_path: Some("docs/design.md".into()),
            }],
            Some(GateOutcome {
                gate_status: GateStatus::Passed,
                blocking_reasons: vec![],
            }),
            "2024-05-01T10:00:00Z".into(),
        )
    }

    #[test]
    fn aggregation_takes_completed_tasks_and_their_reported_context() {
        let context = design_context();
        assert_eq!(context.phase_id, Phase::Design);
        assert_eq!(context.tasks.len(), 2);
        assert_eq!(context.tasks[0].task_type, "design_architecture");
        assert_eq!(
            context.tasks[0].summary.as_deref(),
            Some("Chose a hexagonal layout")
        );
        assert_eq!(context.tasks[0].outputs, Some(json!({"modules": 4})));
        assert_eq!(
            context.decisions,
            [
                json!("Use Postgres for state"),
                json!("One queue per handler")
            ]
        );
        assert_eq!(context.risks, [json!("RabbitMQ outage stalls progress")]);
        assert_eq!(context.notes, [json!("Consider sharding later")]);
        assert_eq!(context.artifacts.len(), 1);
        assert_eq!(context.aggregated_at, "2024-05-01T10:00:00Z");
    }

    #[test]
    fn aggregation_tolerates_malformed_results() {
        let bare_string = json!("just a summary");
        let number = json!(42);
        let odd_context = json!({"summary": 7, "context": "remember this"});
        let null = Value::Null;
        let context = aggregate_phase(
            Phase::Testing,
            &[
                record("a", TaskStatus::Completed, &bare_string),
                record("b", TaskStatus::Completed, &number),
                record("c", TaskStatus::Completed, &odd_context),
                record("d", TaskStatus::Completed, &null),
                TaskRecord {
                    task_type: "e",
                    status: TaskStatus::Completed,
                    result: None,
                },
                record("f", TaskStatus::Failed, &bare_string),
            ],
            &[],
            None,
            "t".into(),
        );
        let summaries: Vec<_> = context.tasks.iter().map(|t| t.summary.clone()).collect();
        assert_eq!(
            summaries,
            [
                Some("just a summary".to_owned()),
                None,
                Some("7".to_owned()),
                None,
                None
            ]
        );
        assert_eq!(context.tasks[1].outputs, Some(json!(42)));
        assert_eq!(context.notes, [json!("remember this")]);
        assert!(context.decisions.is_empty());
    }

    #[test]
    fn merging_replaces_only_its_own_phase_key() {
        let mut full = Map::new();
        full.insert("requirements_phase".into(), json!({"keep": true}));
        full.insert("design_phase".into(), json!({"old": true}));
        let context = design_context();
        merge_phase(&mut full, &context);
        assert_eq!(full["requirements_phase"], json!({"keep": true}));
        let stored: PhaseContext = serde_json::from_value(full["design_phase"].clone()).unwrap();
        assert_eq!(stored, context);
    }

    #[test]
    fn a_summary_that_fits_shows_every_part_of_every_phase_newest_first() {
        let mut full = Map::new();
        merge_phase(&mut full, &design_context());
        let mut requirements = aggregate_phase(
            Phase::Requirements,
            &[],
            &[],
            Some(GateOutcome {
                gate_status: GateStatus::Failed,
                blocking_reasons: vec!["missing artifact: requirements_document".into()],
            }),
            "2024-04-30T09:00:00+00:00".into(),
        );
        requirements.decisions.push(json!({"decision": "MVP only"}));
        merge_phase(&mut full, &requirements);

        let summary = summarize(&TICKET, &full, 2000);
        assert_eq!(
            summary.text,
            "# Single sign-on (priority HIGH)\n\
             Log in with the company IdP\n\
             ## design (gate passed)\n\
             Decisions: Use Postgres for state; One queue per handler\n\
             Risks: RabbitMQ outage stalls progress\n\
             Tasks: design_architecture: Chose a hexagonal layout; create_design_doc: Wrote docs/design.md\n\
             Notes: Consider sharding later\n\
             Artifacts: design_document (docs/design.md)\n\
             ## requirements (gate failed)\n\
             Decisions: {\"decision\":\"MVP only\"}\n\
             Gate blockers: missing artifact: requirements_document"
        );
        assert_eq!(summary.tokens, count_tokens(&summary.text));
    }

    #[test]
    fn equal_times_put_the_later_phase_first_and_unreadable_entries_are_skipped() {
        let mut full = Map::new();
        for phase in [Phase::Requirements, Phase::Testing, Phase::Design] {
            let mut context = aggregate_phase(phase, &[], &[], None, "2024-01-01T00:00:00Z".into());
            context.notes.push(json!(phase.short_name()));
            merge_phase(&mut full, &context);
        }
        full.insert("broken_phase".into(), json!("not an object"));
        full.insert("odd".into(), json!({"decisions": "still readable"}));
        let text = summarize(&TICKET, &full, 2000).text;
        let headings: Vec<_> = text.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            ["## testing", "## design", "## requirements", "## odd"]
        );
        assert!(text.contains("Decisions: still readable"));
    }

    #[test]
    fn differently_written_times_order_by_the_instant_they_name() {
        assert!(parse_rfc3339("2024-01-01T00:00:00.5Z") > parse_rfc3339("2024-01-01T00:00:00Z"));
        assert_eq!(
            parse_rfc3339("2024-01-01T02:00:00+02:00"),
            parse_rfc3339("2024-01-01T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some((1, 0)));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00Z"),
            Some((951_868_800, 0))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }

    /// A ticket whose notes and artifacts are far larger than any budget.
    fn bulky_context() -> Map<String, Value> {
        let mut full = Map::new();
        for (phase, at) in [
            (Phase::Requirements, "2024-01-01T00:00:00Z"),
            (Phase::Design, "2024-01-02T00:00:00Z"),
        ] {
            let mut context = aggregate_phase(phase, &[], &[], None, at.into());
            context
                .decisions
                .push(json!(format!("{} decision", phase.short_name())));
            context
                .risks
                .push(json!(format!("{} risk", phase.short_name())));
            for n in 0..300 {
                context
                    .notes
                    .push(json!(format!("note {n} about something long-winded")));
                context.artifacts.push(ArtifactRef {
                    artifact_type: format!("artifact_{n}"),
                    artifact_path: Some(format!("docs/{n}.md")),
                });
            }
            merge_phase(&mut full, &context);
        }
        full
    }

    #[test]
    fn decisions_and_risks_survive_when_notes_are_cut() {
        let summary = summarize(&TICKET, &bulky_context(), 120);
        assert!(summary.tokens <= 120);
        assert!(summary.text.starts_with(TICKET_HEADER), "{}", summary.text);
        assert_eq!(summary.tokens, count_tokens(&summary.text));
        for kept in [
            "design decision",
            "design risk",
            "requirements decision",
            "requirements risk",
        ] {
            assert!(
                summary.text.contains(kept),
                "{kept} missing:\n{}",
                summary.text
            );
        }
        assert!(!summary.text.contains("note 299"));
        let design = summary.text.find("## design").unwrap();
        let requirements = summary.text.find("## requirements").unwrap();
        assert!(
            design < requirements,
            "newest phase first:\n{}",
            summary.text
        );
        assert!(
            summary.text.ends_with("more items omitted)"),
            "{}",
            summary.text
        );
    }

    #[test]
    fn a_large_context_is_summarized_within_budget() {
        let full = bulky_context();
        let summary = summarize(&TICKET, &full, 2000);
        assert!(summary.tokens <= 2000);
        assert!(summary.text.starts_with(TICKET_HEADER), "{}", summary.text);
        assert!(summary.text.contains("design decision"), "{}", summary.text);
        assert!(
            summary.text.ends_with("more items omitted)"),
            "{}",
            summary.text
        );
    }

    #[test]
    fn only_the_newest_entries_of_a_long_line_are_considered_and_the_rest_counted_as_omitted() {
        let artifacts: Vec<ArtifactRef> = (0..300)
            .map(|index| ArtifactRef {
                artifact_type: format!("report_{index}"),
                artifact_path: None,
            })
            .collect();
        let context = aggregate_phase(Phase::Testing, &[], &artifacts, None, "t".into());
        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let summary = summarize(&TICKET, &full, 2000);
        assert!(summary.text.contains("report_299"), "{}", summary.text);
        assert!(!summary.text.contains("report_0;"), "{}", summary.text);
        assert!(
            summary.text.contains(&format!(
                "{} more items omitted",
                300 - MAX_ENTRIES_PER_LINE
            )),
            "{}",
            summary.text
        );
    }

    #[test]
    fn a_single_entry_longer_than_the_budget_is_truncated_with_an_ellipsis() {
        let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
        context.decisions.push(json!("word ".repeat(500)));
        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let ticket = TicketBrief {
            title: "T",
            priority: Priority::Low,
            description: "",
        };
        let summary = summarize(&ticket, &full, 40);
        assert!(summary.tokens <= 40);
        assert!(summary.tokens >= 25, "{}", summary.tokens);
        assert!(summary
            .text
            .starts_with("# T (priority LOW)\n## design\nDecisions: word word"));
        assert!(summary.text.contains('…'), "{}", summary.text);
    }

    #[test]
    fn a_zero_budget_gives_an_empty_summary_and_any_other_opens_with_the_ticket() {
        let summary = summarize(&TICKET, &bulky_context(), 0);
        assert_eq!(
            summary,
            Summary {
                text: String::new(),
                tokens: 0
            }
        );
        for max_tokens in 4..40 {
            let summary = summarize(&TICKET, &Map::new(), max_tokens);
            assert!(summary.text.starts_with('#'), "{max_tokens}: {summary:?}");
            assert!(summary.tokens <= max_tokens, "{max_tokens}: {summary:?}");
        }
    }

    #[test]
    fn a_summary_with_no_phase_content_is_the_ticket_itself() {
        // Leaving BACKLOG aggregates a phase with nothing in it.
        let mut full = Map::new();
        merge_phase(
            &mut full,
            &aggregate_phase(Phase::Backlog, &[], &[], None, "t".into()),
        );
        let summary = summarize(&TICKET, &full, 2000);
        assert_eq!(summary.text, TICKET_HEADER);
        assert_eq!(summary.tokens, count_tokens(TICKET_HEADER));
        assert!(summary.tokens > 0);

        let untold = TicketBrief {
            description: " \n ",
            ..TICKET
        };
        assert_eq!(
            summarize(&untold, &full, 2000).text,
            "# Single sign-on (priority HIGH)"
        );
    }

    #[test]
    fn a_description_is_cut_to_what_the_phases_leave_and_never_crowds_them_out() {
        let description = "The whole specification, pasted in. ".repeat(2000);
        let ticket = TicketBrief {
            description: &description,
            ..TICKET
        };

        // Nothing else to show: the description fills the budget.
        let alone = summarize(&ticket, &Map::new(), 300);
        assert!(alone.tokens <= 300);
        assert!(alone.tokens >= 280, "{}", alone.tokens);
        let lines: Vec<&str> = alone.text.lines().collect();
        assert_eq!(lines.len(), 2, "{}", alone.text);
        assert_eq!(lines[0], "# Single sign-on (priority HIGH)");
        assert!(lines[1].starts_with("The whole specification, pasted in. The whole"));
        assert!(lines[1].ends_with('…'), "{}", lines[1]);

        // Phases to show as well: they keep at least half the room, decisions and risks first.
        let shared = summarize(&ticket, &bulky_context(), 300);
        assert!(shared.tokens <= 300);
        assert!(shared
            .text
            .starts_with("# Single sign-on (priority HIGH)\nThe whole specification"));
        for kept in [
            "design decision",
            "design risk",
            "requirements decision",
            "requirements risk",
        ] {
            assert!(
                shared.text.contains(kept),
                "{kept} missing:\n{}",
                shared.text
            );
        }
        let description_line = shared.text.lines().nth(1).unwrap();
        assert!(description_line.ends_with('…'), "{description_line}");
        assert!(count_tokens(description_line) >= 100, "{}", shared.text);
    }

    #[test]
    fn a_title_too_long_for_the_budget_is_cut_and_keeps_its_priority() {
        let title = "An extremely long title that goes on and on ".repeat(10);
        let ticket = TicketBrief {
            title: &title,
            ..TICKET
        };
        let summary = summarize(&ticket, &bulky_context(), 16);
        assert!(summary.tokens <= 16);
        assert!(
            summary.text.starts_with("# An extremely long"),
            "{}",
            summary.text
        );
        assert!(
            summary.text.ends_with("… (priority HIGH)"),
            "{}",
            summary.text
        );

        // Too small for a few tokens of title beside the priority: the line is cut instead.
        let summary = summarize(&ticket, &bulky_context(), 5);
        assert!(summary.tokens <= 5);
        assert!(summary.text.starts_with("# An"), "{}", summary.text);
        assert!(summary.text.ends_with('…'), "{}", summary.text);
    }

    #[test]
    fn identical_decisions_risks_and_notes_of_a_phase_are_aggregated_once_in_first_order() {
        let first = json!({"context": {
            "decisions": ["Use Postgres", {"b": 2, "a": 1}, "One queue"],
            "risks": ["Outage"],
            "notes": ["Pairing helped"],
        }});
        let second = json!({"context": {
            "decisions": ["One queue", {"a": 1, "b": 2}, "Use Postgres", "Shard later"],
            "risks": ["Outage", "Outage"],
            "notes": ["Pairing helped", "pairing helped"],
        }});
        let context = aggregate_phase(
            Phase::Design,
            &[
                record("design_architecture", TaskStatus::Completed, &first),
                record("create_design_doc", TaskStatus::Completed, &second),
            ],
            &[],
            None,
            "t".into(),
        );
        assert_eq!(
            context.decisions,
            [
                json!("Use Postgres"),
                json!({"a": 1, "b": 2}),
                json!("One queue"),
                json!("Shard later")
            ]
        );
        assert_eq!(context.risks, [json!("Outage")]);
        // Only exact duplicates go: differently written notes are different notes.
        assert_eq!(
            context.notes,
            [json!("Pairing helped"), json!("pairing helped")]
        );

        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let text = summarize(&TICKET, &full, 2000).text;
        assert!(
            text.contains("Decisions: Use Postgres; {\"a\":1,\"b\":2}; One queue; Shard later\n"),
            "{text}"
        );
        assert!(text.contains("Risks: Outage\n"), "{text}");
        assert!(
            text.contains("Notes: Pairing helped; pairing helped"),
            "{text}"
        );
    }

    #[test]
    fn entries_that_read_alike_in_a_stored_phase_are_summarized_once() {
        // Duplicates stored before aggregation kept entries once, and entries that differ only
        // in whitespace, which the summary collapses.
        let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
        context.decisions = vec![
            json!("Use Postgres"),
            json!("One queue"),
            json!("Use  Postgres\n"),
            json!("One queue"),
        ];
        context.risks = vec![json!("Outage"), json!("Outage")];
        context.notes = vec![json!("Later"), json!(" Later ")];
        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let text = summarize(&TICKET, &full, 2000).text;
        assert_eq!(
            text,
            format!(
                "{TICKET_HEADER}\n## design\nDecisions: Use Postgres; One queue\nRisks: Outage\nNotes: Later"
            )
        );
    }

    #[test]
    fn truncation_never_splits_a_character() {
        for max in 1..12 {
            let (text, tokens) = truncate_to_tokens(&"日本語のテキスト😀".repeat(10), max);
            assert!(tokens <= max);
            assert_eq!(tokens, count_tokens(&text));
        }
    }

    #[test]
    fn entries_are_put_on_one_line_and_runaway_runs_are_cut() {
        assert_eq!(clean("  a\n\n b\r\n\tc  ", 100), "a b c");
        let long_word = format!("{} tail", "x".repeat(1000));
        assert_eq!(
            clean(&long_word, 10_000),
            format!("{}… tail", "x".repeat(RUN_CHARS))
        );
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean(" \n ", 3), "");
    }

    #[test]
    fn pathological_input_neither_panics_nor_stalls_the_summary() {
        let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
        context.decisions.push(json!("x".repeat(1_000_000)));
        context.notes.push(json!(" ".repeat(1_000_000)));
        context.risks.push(json!("lorem ipsum ".repeat(50_000)));
        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let started = std::time::Instant::now();
        let summary = summarize(&TICKET, &full, 2000);
        assert!(summary.tokens <= 2000);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Counting a long unbroken run directly works too (in pieces).
        assert!(count_tokens(&"y".repeat(100_000)) > 0);
    }

    #[test]
    fn counting_is_exact_for_ordinary_text() {
        let text = "Decisions: Use Postgres; <|endoftext|> is plain text here\n";
        assert_eq!(count_tokens(text), tokenizer().encode_ordinary(text).len());
        assert_eq!(count_tokens(""), 0);
    }

    fn arbitrary_text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "(?s).{0,24}",
            1 => "(?s).{0,300}",
            1 => "[ \n\t;,.a-z…]{0,60}",
        ]
    }

    prop_compose! {
        fn arbitrary_phase_context()(
            phase in proptest::sample::select(Phase::ALL.to_vec()),
            decisions in proptest::collection::vec(arbitrary_text(), 0..4),
            risks in proptest::collection::vec(arbitrary_text(), 0..3),
            notes in proptest::collection::vec(arbitrary_text(), 0..4),
            tasks in proptest::collection::vec(
                (arbitrary_text(), proptest::option::of(arbitrary_text())), 0..4),
            artifacts in proptest::collection::vec(
                (arbitrary_text(), proptest::option::of(arbitrary_text())), 0..6),
            gate in proptest::option::of((
                proptest::sample::select(vec![
                    GateStatus::Passed, GateStatus::Failed, GateStatus::Pending]),
                proptest::collection::vec(arbitrary_text(), 0..3))),
            aggregated_at in prop_oneof![
                "2024-0[1-9]-[12][0-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9]Z",
                arbitrary_text(),
            ],
        ) -> PhaseContext {
            PhaseContext {
                phase_id: phase,
                tasks: tasks
                    .into_iter()
                    .map(|(task_type, summary)| TaskContextEntry {
                        task_type,
                        summary,
                        outputs: None,
                    })
                    .collect(),
                decisions: decisions.into_iter().map(Value::String).collect(),
                risks: risks.into_iter().map(Value::String).collect(),
                notes: notes.into_iter().map(Value::String).collect(),
                artifacts: artifacts
                    .into_iter()
                    .map(|(artifact_type, artifact_path)| ArtifactRef {
                        artifact_type,
                        artifact_path,
                    })
                    .collect(),
                gate: gate.map(|(gate_status, blocking_reasons)| GateOutcome {
                    gate_status,
                    blocking_reasons,
                }),
                aggregated_at,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_summary_never_exceeds_its_budget_and_reports_its_exact_size(
            contexts in proptest::collection::vec(arbitrary_phase_context(), 0..6),
            title in prop_oneof![4 => arbitrary_text(), 1 => "(?s).{400,500}"],
            priority in proptest::sample::select(vec![
                Priority::Low, Priority::Medium, Priority::High, Priority::Critical]),
            description in prop_oneof![
                3 => arbitrary_text(),
                1 => "[a-z ]{1000,3000}",
            ],
            max_tokens in 0usize..300,
        ) {
            let mut full = Map::new();
            for context in &contexts {
                merge_phase(&mut full, context);
            }
            let ticket = TicketBrief {
                title: &title,
                priority,
                description: &description,
            };
            let summary = summarize(&ticket, &full, max_tokens);
            prop_assert!(summary.tokens <= max_tokens, "{} > {}", summary.tokens, max_tokens);
            prop_assert_eq!(summary.tokens, count_tokens(&summary.text));
            // It opens with the ticket whenever the budget holds a token or two of it.
            prop_assert!(max_tokens < 4 || summary.text.starts_with('#'), "{:?}", summary.text);
        }
    }
}
