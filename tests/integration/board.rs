//! The board (the web page `phaseflow api` serves at `/`) in a real browser: headless Chromium
//! driven through chromedriver (WebDriver) by fantoccini, against the API and a worker running
//! in-process on the test's own database and broker names. Sign-in, a card moving live across
//! the columns, a ticket's page, the operations page with an operator's replay of a dead letter
//! (and an agent's refusal), agent input shown as text, the columns and priorities the workflow
//! endpoint lists, and the security headers of the page and its modules.
//!
//! Each test starts its own chromedriver on a free port with a fresh Chromium profile. Without
//! `/usr/bin/chromedriver` and `/usr/bin/chromium` the browser tests fail and say how to install
//! them (`.ci/run` does). Every page a test looks at is saved as a PNG under
//! `target/board-screenshots/`.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use lapin::BasicProperties;
use phaseflow::api::board::views::{DeadLetterView, DeadLettersView};
use phaseflow::api::views::{ErrorBody, WorkflowView};
use phaseflow::domain::{GateStatus, Phase, TaskId};
use phaseflow::protocol::events::{GeneratedTask, PhaseTransitioned, TasksGenerated};
use phaseflow_client::OutgoingRequest;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::http::{Api, AGENT, OPERATOR, OPERATOR_TOKEN, TOKEN};
use crate::common::requests::{ACTOR, CREATE, TRANSITION};
use crate::common::{Requests, TestApp, AMQP_URL, WAIT};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium's flags (and `--user-data-dir`, a fresh directory per test).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
];

/// How long the page may take to show what a test waits for (eight tests run at once on a
/// machine that may have two cores).
pub(crate) const PAGE_WAIT: Duration = Duration::from_secs(20);
/// How long a live change may take to show after its event arrived. The board aims at under a
/// second; this leaves room for a loaded machine.
const LIVE_WAIT: Duration = Duration::from_secs(5);

// -------------------------------------------------------------------------------------------------
// The API, served in-process
// -------------------------------------------------------------------------------------------------

/// `phaseflow api` on a free port, with [`OPERATOR`] an operator.
pub(crate) async fn start_api(app: &mut TestApp) -> Api {
    app.settings.auth.operators = vec![OPERATOR.to_owned()];
    Api::start(app).await
}

/// Waits until the dead-letter listing shows a message with this id; returns it.
async fn wait_for_dead_letter(api: &Api, message_id: &str) -> DeadLetterView {
    let deadline = Instant::now() + WAIT;
    loop {
        let listing: DeadLettersView = api.read_as("/api/v1/dead-letters?limit=50").await;
        if let Some(letter) = listing
            .dead_letters
            .iter()
            .find(|letter| letter.message_id.as_deref() == Some(message_id))
        {
            return letter.clone();
        }
        assert!(
            Instant::now() < deadline,
            "`{message_id}` did not reach the dead letters within {WAIT:?}: {listing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// -------------------------------------------------------------------------------------------------
// The browser
// -------------------------------------------------------------------------------------------------

/// A chromedriver of this test (in a process group of its own, killed with Chromium on drop)
/// and a WebDriver session on the board.
pub(crate) struct Browser {
    client: Client,
    base: String,
    /// the test's name, for a screenshot taken when a wait fails
    name: String,
    chromedriver: Child,
    driver_url: String,
    http: reqwest::Client,
    /// the Chromium profile and chromedriver's output; kept when the test fails
    scratch: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it answers and opens a session.
    pub(crate) async fn start(base: &str, name: &str) -> Browser {
        for (path, what) in [(CHROMEDRIVER, "chromedriver"), (CHROMIUM, "Chromium")] {
            assert!(
                Path::new(path).exists(),
                "the browser tests need {what} at {path}, which is missing. Install Chromium and \
                 its driver with: apt-get install chromium chromium-driver (as root; .ci/run does)"
            );
        }
        let scratch =
            std::env::temp_dir().join(format!("phaseflow-board-{name}-{}", Uuid::new_v4()));
        let profile = scratch.join("profile");
        std::fs::create_dir_all(&profile).expect("a scratch directory");
        let log_path = scratch.join("chromedriver.log");
        let log = File::create(&log_path).expect("chromedriver's log file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            // its own process group, so that Chromium (its child) can be killed with it
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");

        // chromedriver answers /status with `ready` once it listens
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = chromedriver.try_wait().expect("chromedriver's state") {
                let log = read_log(&log_path);
                let _ = std::fs::remove_dir_all(&scratch);
                panic!("chromedriver exited ({status}) before answering: {log}");
            }
            let ready = match http.get(format!("{driver_url}/status")).send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .map(|status| status["value"]["ready"] == true)
                    .unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                kill_group(&mut chromedriver);
                let log = read_log(&log_path);
                let _ = std::fs::remove_dir_all(&scratch);
                panic!("chromedriver did not answer on {driver_url} within 30 s: {log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| (*arg).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            // the console, read back through chromedriver's log endpoint
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let connected = ClientBuilder::rustls()
            .expect("the WebDriver HTTP client")
            .capabilities(capabilities)
            .connect(&driver_url)
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(error) => {
                kill_group(&mut chromedriver);
                let log = read_log(&log_path);
                let _ = std::fs::remove_dir_all(&scratch);
                panic!("chromedriver could not start Chromium ({error}): {log}");
            }
        };
        Browser {
            client,
            base: base.to_owned(),
            name: name.to_owned(),
            chromedriver,
            driver_url,
            http,
            scratch,
        }
    }

    /// Loads `path` of the API (a full navigation).
    /// Resizes the window (to look at the page as a phone shows it).
    async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("the window resizes");
    }

    pub(crate) async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|error| panic!("cannot open {path}: {error}"));
    }

    /// Runs a script (its `return` value comes back); `args` are `arguments[0]`, ….
    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("the script failed ({error}): {script}"))
    }

    /// Polls `script` until it returns something truthy (within `within`) and returns that; else
    /// saves a screenshot and fails, naming `what` and showing the page's text.
    pub(crate) async fn wait_js(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.js(script, args.clone()).await;
            if truthy(&value) {
                return value;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot(&format!("failed-{}", self.name)).await;
                let text = self
                    .js(
                        "return location.href + '\\n' + document.body.innerText",
                        vec![],
                    )
                    .await;
                // a module that fails to load or link shows nothing but says why in the console
                let console = self.console().await;
                panic!(
                    "{what}: not seen within {within:?} (last answer {value}); screenshot {}; \
                     the page:\n{}\nthe console: {console:#?}",
                    shot.display(),
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for an element matching `css`.
    pub(crate) async fn wait_for(&self, what: &str, css: &str) {
        self.wait_js(
            what,
            "return document.querySelector(arguments[0]) !== null",
            vec![json!(css)],
            PAGE_WAIT,
        )
        .await;
    }

    /// The `textContent` of the first element matching `css` (null when there is none).
    async fn text_of(&self, css: &str) -> Value {
        self.js(
            "const node = document.querySelector(arguments[0]); return node ? node.textContent : null",
            vec![json!(css)],
        )
        .await
    }

    /// The `textContent` of the first element matching `css` ("" when there is none).
    pub(crate) async fn text(&self, css: &str) -> String {
        let text = self.text_of(css).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// The count a column's header shows.
    async fn column_count(&self, phase: &str) -> String {
        self.text(&format!("{} .column-count", column(phase))).await
    }

    /// How many elements match `css`.
    pub(crate) async fn count(&self, css: &str) -> u64 {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            vec![json!(css)],
        )
        .await
        .as_u64()
        .expect("a count")
    }

    pub(crate) async fn click(&self, css: &str) {
        self.wait_for(css, css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
            .click()
            .await
            .unwrap_or_else(|error| panic!("cannot click {css}: {error}"));
    }

    /// Signs in through the form (the page must be showing it) and waits until the header names
    /// the agent.
    pub(crate) async fn sign_in(&self, token: &str, agent: &str) {
        self.wait_for("the sign-in form", "form#sign-in input#token")
            .await;
        let input = self
            .client
            .find(Locator::Css("input#token"))
            .await
            .expect("the token field");
        input.clear().await.expect("the token field clears");
        input.send_keys(token).await.expect("the token is typed");
        self.click("form#sign-in button[type=submit]").await;
        self.wait_js(
            &format!("signed in as {agent}"),
            "return document.getElementById('whoami').textContent.startsWith(arguments[0] + ' ·')",
            vec![json!(agent)],
            PAGE_WAIT,
        )
        .await;
    }

    /// Closes the flash message (it would hide part of a screenshot).
    pub(crate) async fn dismiss_flash(&self) {
        self.js(
            "document.querySelector('#flash .flash-close')?.click()",
            vec![],
        )
        .await;
    }

    /// Saves what the window shows as `target/board-screenshots/<name>.png`; returns the path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/board-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// The console messages since the last call (chromedriver's `browser` log).
    async fn console(&self) -> Vec<Value> {
        let session = self
            .client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session");
        let response = self
            .http
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers");
        let status = response.status();
        let log: Value = response.json().await.expect("the log as JSON");
        match log["value"].as_array() {
            Some(entries) if status.is_success() => entries.clone(),
            _ => panic!("chromedriver did not give the console ({status}): {log}"),
        }
    }

    /// Fails when a form control on the page has no accessible name (a `<label>`, or
    /// `aria-label`), naming the first such control.
    async fn assert_controls_labelled(&self) {
        let unlabelled = self
            .js(
                "const bare = [...document.querySelectorAll('input, select, textarea, button')]
                   .filter((c) => c.type !== 'hidden')
                   .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                     && !(c.tagName === 'BUTTON' && c.textContent.trim()));
                 return bare.map((c) => c.outerHTML.slice(0, 120));",
                vec![],
            )
            .await;
        assert_eq!(unlabelled, json!([]), "controls without an accessible name");
    }

    /// Fails on script errors and Content-Security-Policy violations in the console (failed
    /// requests, such as a 403 a test asked for, are not script errors).
    pub(crate) async fn assert_no_script_errors(&self) {
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                let severe =
                    entry["level"] == "SEVERE" && !message.contains("Failed to load resource");
                severe
                    || message.contains("Content Security Policy")
                    || message.contains("Uncaught")
            })
            .collect();
        assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.chromedriver);
        if std::thread::panicking() {
            eprintln!(
                "browser test failed: Chromium's profile and chromedriver's log are kept in {}",
                self.scratch.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

/// Kills chromedriver and whatever it started (its process group), and reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| format!("(no log: {error})"))
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(value) => *value,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

// -------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------

fn column(phase: &str) -> String {
    format!(r#"section.column[data-phase="{phase}"]"#)
}

fn card(phase: &str, ticket: &str) -> String {
    format!(
        r#"{} article.card[data-ticket-id="{ticket}"]"#,
        column(phase)
    )
}

/// Asks for a transition and waits for the worker to have applied it.
async fn move_to(app: &TestApp, ticket: &str, phase: Phase) {
    app.transition(ticket, phase, "ready for it")
        .await
        .succeeded();
}

/// The tasks generated for `ticket` (waits for `tasks.generated`).
async fn generated_tasks(app: &TestApp, ticket: &str) -> Vec<GeneratedTask> {
    app.events
        .wait_for_typed::<TasksGenerated>("tasks.generated", ticket)
        .await
        .data
        .generated_tasks
}

/// Claims a task of the ticket as the test agent.
async fn claim(app: &TestApp, ticket: &str, task: TaskId) {
    app.claim(
        ACTOR,
        Some(ticket),
        json!({"task_id": task, "lease_seconds": 3600}),
    )
    .await
    .succeeded();
}

/// Creates a ticket with a priority and description; returns its id.
async fn create(app: &TestApp, title: &str, priority: &str, description: &str) -> String {
    let data = json!({"title": title, "priority": priority, "description": description});
    let created = app.create(None, data).await.succeeded();
    created.data.ticket_id.to_string()
}

/// A browser on the board, signed in as [`OPERATOR`], showing the columns.
async fn board_signed_in(api: &Api, name: &str) -> Browser {
    let browser = Browser::start(&api.base, name).await;
    browser.goto("/").await;
    browser.sign_in(OPERATOR_TOKEN, OPERATOR).await;
    browser
        .wait_for("the backlog column", &column("PHASE_BACKLOG"))
        .await;
    browser
}

/// Whether a card of the ticket is in the column of `phase`.
const CARD_SHOWN: &str = "return document.querySelector(arguments[0]) !== null";

// -------------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_shows_the_board_and_keeps_the_token_in_session_storage_only() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    // without a token the page asks for one; signing in lands on the board
    let browser = board_signed_in(&api, "sign-in").await;
    assert_eq!(
        browser.text("#whoami").await,
        format!("{OPERATOR} · operator")
    );
    assert_eq!(
        browser.count("section.column").await,
        8,
        "one column per phase"
    );

    // the token is kept in sessionStorage, never in the URL, localStorage or a cookie
    let url = browser.client.current_url().await.expect("the URL");
    assert!(
        !url.as_str().contains(OPERATOR_TOKEN),
        "the token is in the URL: {url}"
    );
    assert_eq!(url.fragment(), Some("/board"), "{url}");
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('phaseflow.token')", vec![])
            .await,
        json!(OPERATOR_TOKEN)
    );
    let elsewhere = browser
        .js(
            "return JSON.stringify(localStorage) + ' ' + document.cookie",
            vec![],
        )
        .await;
    assert!(
        !elsewhere
            .as_str()
            .unwrap_or_default()
            .contains(OPERATOR_TOKEN),
        "the token is in localStorage or a cookie: {elsewhere}"
    );
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_moves_live_across_the_columns_without_a_reload() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let browser = board_signed_in(&api, "board-live").await;
    // the live stream is open before anything happens; a marker shows the page never reloads
    browser
        .wait_js(
            "the live stream",
            "return document.getElementById('live-status').textContent === 'live'",
            vec![],
            PAGE_WAIT,
        )
        .await;
    browser.js("window.__notReloaded = true", vec![]).await;

    // a ticket created over AMQP appears in BACKLOG
    let title = "Export the audit log as CSV";
    let ticket = app.create_ticket(title).await;
    let created_at = Instant::now();
    let in_backlog = json!(card("PHASE_BACKLOG", &ticket));
    browser
        .wait_js(
            "the new card in BACKLOG",
            CARD_SHOWN,
            vec![in_backlog],
            LIVE_WAIT,
        )
        .await;
    println!(
        "the created card showed {} ms after ticket.created reached the test",
        created_at.elapsed().as_millis()
    );
    let card_title = format!("{} a.card-title", card("PHASE_BACKLOG", &ticket));
    assert_eq!(browser.text(&card_title).await, title);
    assert_eq!(browser.column_count("PHASE_BACKLOG").await, "1");

    // the worker moves it to REQUIREMENTS: the card follows within LIVE_WAIT of the event
    let sent_at = Instant::now();
    let outcome = async {
        move_to(&app, &ticket, Phase::Requirements).await;
        Instant::now()
    };
    let shown = async {
        let in_requirements = json!(card("PHASE_REQUIREMENTS", &ticket));
        browser
            .wait_js(
                "the card in REQUIREMENTS",
                CARD_SHOWN,
                vec![in_requirements],
                WAIT,
            )
            .await;
        Instant::now()
    };
    let (event_at, shown_at) = tokio::join!(outcome, shown);
    let delay = shown_at.saturating_duration_since(event_at);
    println!(
        "live update: the card moved {} ms after phase.transitioned reached the test ({} ms after \
         the request was sent)",
        delay.as_millis(),
        shown_at.duration_since(sent_at).as_millis()
    );
    assert!(
        delay <= LIVE_WAIT,
        "the card took {delay:?} after the event to move (at most {LIVE_WAIT:?})"
    );
    assert_eq!(
        browser.count(&card("PHASE_BACKLOG", &ticket)).await,
        0,
        "the card left BACKLOG"
    );
    assert_eq!(browser.column_count("PHASE_BACKLOG").await, "0");
    assert_eq!(browser.column_count("PHASE_REQUIREMENTS").await, "1");
    assert_eq!(
        browser
            .js("return window.__notReloaded === true", vec![])
            .await,
        json!(true),
        "the page was reloaded"
    );
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_in_use_is_pictured_and_fits_a_phone() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let browser = board_signed_in(&api, "board").await;

    // a few tickets, for a board that looks used in the screenshot
    let audit = create(&app, "Export the audit log as CSV", "MEDIUM", "").await;
    let sso = create(
        &app,
        "Single sign-on with the company IdP",
        "HIGH",
        "SAML and OIDC",
    )
    .await;
    let flaky = create(
        &app,
        "Flaky upload test on slow disks",
        "CRITICAL",
        "Fails one run in twenty",
    )
    .await;
    create(&app, "Dark mode for the settings page", "LOW", "").await;
    create(&app, "Rate-limit the public search API", "MEDIUM", "").await;
    for ticket in [&audit, &sso, &flaky] {
        move_to(&app, ticket, Phase::Requirements).await;
    }
    let tasks = generated_tasks(&app, &flaky).await;
    claim(&app, &flaky, tasks[0].id).await;
    browser
        .wait_js(
            "every card in place",
            "return document.querySelectorAll('article.card').length === 5 && \
             (document.querySelector(arguments[0] + ' .card-claims')?.textContent ?? '').includes('agent-test')",
            vec![json!(card("PHASE_REQUIREMENTS", &flaky))],
            PAGE_WAIT,
        )
        .await;
    assert_eq!(browser.column_count("PHASE_REQUIREMENTS").await, "3");
    // the sign-in message would hide a card in the picture
    browser.dismiss_flash().await;
    browser.assert_controls_labelled().await;
    browser.screenshot("board").await;

    // on a phone the columns scroll inside the board; the page itself does not get wider
    browser.resize(390, 844).await;
    browser
        .wait_js(
            "the page fitting a phone's width",
            "return document.documentElement.scrollWidth <= window.innerWidth &&
               document.querySelectorAll('section.column').length === 8;",
            vec![],
            PAGE_WAIT,
        )
        .await;
    browser.screenshot("board-phone").await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

/// A ticket at work in REQUIREMENTS, as a ticket page shows it.
struct TicketAtWork {
    ticket: String,
    /// the correlation id it was moved with
    correlation: String,
    /// the trace id of the move's outcome event
    move_trace: String,
    tasks: Vec<GeneratedTask>,
    /// the status its gate was validated with, before any artifact
    gate_status: GateStatus,
}

/// Where the board is told to link trace ids to.
const TRACE_URL: &str = "https://traces.example.test/trace/{trace_id}";

const AT_WORK_TITLE: &str = "Password reset by e-mail";
const AT_WORK_DESCRIPTION: &str = "Users reset a forgotten password through a link sent by e-mail.";

/// Creates a ticket, moves it to REQUIREMENTS with a correlation id of its own (so the timeline
/// can show it), claims its first task and validates its gate before any artifact.
async fn ticket_at_work(app: &TestApp) -> TicketAtWork {
    let ticket = create(app, AT_WORK_TITLE, "HIGH", AT_WORK_DESCRIPTION).await;
    let correlation = format!("feature-reset-{}", Uuid::new_v4().simple());
    let request = Uuid::new_v4().to_string();
    app.client
        .publish(&OutgoingRequest {
            id: request.clone(),
            request_type: TRANSITION.to_owned(),
            subject: Some(ticket.clone()),
            source: "agent/test".to_owned(),
            actor: Some(ACTOR.to_owned()),
            correlation_id: Some(correlation.clone()),
            data: json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "planned for this sprint"}),
        })
        .await
        .expect("request published");
    let moved = app
        .outcome_of_request::<PhaseTransitioned>(&request, TRANSITION)
        .await
        .succeeded();
    let move_trace = moved.raw["traceparent"]
        .as_str()
        .and_then(|traceparent| traceparent.split('-').nth(1))
        .unwrap_or_else(|| panic!("no traceparent on {}", moved.raw))
        .to_owned();
    let tasks = generated_tasks(app, &ticket).await;
    assert!(!tasks.is_empty(), "REQUIREMENTS has tasks");
    claim(app, &ticket, tasks[0].id).await;
    let validated = app.validate_gate(&ticket, None).await.succeeded();
    TicketAtWork {
        ticket,
        correlation,
        move_trace,
        tasks,
        gate_status: validated.data.gate_status,
    }
}

/// A browser signed in as [`OPERATOR`] that followed the ticket's card to its page, with its
/// timeline, tasks and gate loaded.
async fn ticket_page(api: &Api, ticket: &str, name: &str) -> Browser {
    let browser = board_signed_in(api, name).await;
    let link = format!("{} a.card-title", card("PHASE_REQUIREMENTS", ticket));
    browser.click(&link).await;
    browser
        .wait_js(
            "the ticket's title",
            "const h = document.querySelector('h1#ticket-title'); return h && h.textContent === arguments[0]",
            vec![json!(AT_WORK_TITLE)],
            PAGE_WAIT,
        )
        .await;
    let url = browser.client.current_url().await.expect("the URL");
    assert_eq!(url.fragment(), Some(format!("/tickets/{ticket}").as_str()));
    browser
        .wait_for(
            "the transition in the timeline",
            r#"ol#timeline li.timeline-entry[data-kind="transitioned"]"#,
        )
        .await;
    browser
        .wait_for("the task rows", "table#tasks tr[data-task-id]")
        .await;
    browser
        .wait_for("the gate result", "#gates .gate-result")
        .await;
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_page_shows_the_ticket_and_its_timeline() {
    let mut app = TestApp::spawn().await;
    app.settings.telemetry.trace_url = Some(TRACE_URL.to_owned());
    let api = start_api(&mut app).await;
    let at_work = ticket_at_work(&app).await;
    let trace_link = TRACE_URL.replace("{trace_id}", &at_work.move_trace);

    // every entry names the trace of what did it, linked to the tracing backend
    let timeline: Value = api
        .read_as(&format!(
            "/api/v1/board/tickets/{}/timeline",
            at_work.ticket
        ))
        .await;
    let entries = timeline["entries"].as_array().expect("entries");
    for entry in entries {
        let trace_id = entry["trace_id"].as_str().unwrap_or_default();
        assert!(
            trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "no trace id on {entry}"
        );
        assert_eq!(
            entry["trace_url"].as_str(),
            Some(TRACE_URL.replace("{trace_id}", trace_id).as_str()),
            "{entry}"
        );
    }
    let traces_of = |kind: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|entry| entry["kind"] == kind)
            .filter_map(|entry| entry["trace_id"].as_str())
            .collect()
    };
    // the move and what entering the phase did are one trace; the claim is another request's
    assert_eq!(traces_of("transitioned"), [at_work.move_trace.as_str()]);
    assert!(traces_of("task_created")
        .iter()
        .all(|trace| *trace == at_work.move_trace));
    assert_ne!(traces_of("task_claimed"), [at_work.move_trace.as_str()]);
    assert_ne!(traces_of("created"), [at_work.move_trace.as_str()]);

    let browser = ticket_page(&api, &at_work.ticket, "ticket-timeline").await;

    let phase = browser.text("#ticket-phase").await;
    assert!(phase.contains("PHASE_REQUIREMENTS"), "{phase}");
    let priority = browser.text("#ticket-priority").await;
    assert!(priority.contains("HIGH"), "{priority}");
    assert_eq!(
        browser.text("#ticket-description").await,
        AT_WORK_DESCRIPTION
    );

    // the timeline: created, then the move with its actor, reason and correlation id
    let kinds = browser
        .js(
            "return Array.from(document.querySelectorAll('ol#timeline li.timeline-entry'), (li) => li.dataset.kind)",
            vec![],
        )
        .await;
    let kinds: Vec<String> = serde_json::from_value(kinds).expect("kinds");
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("created"),
        "{kinds:?}"
    );
    for kind in [
        "transitioned",
        "task_created",
        "task_claimed",
        "gate_validated",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let moved_entry = browser
        .text(r#"ol#timeline li.timeline-entry[data-kind="transitioned"]"#)
        .await;
    assert!(moved_entry.contains(ACTOR), "no actor in {moved_entry:?}");
    assert!(
        moved_entry.contains(&at_work.correlation),
        "no correlation id in {moved_entry:?}"
    );
    assert!(
        moved_entry.contains("planned for this sprint"),
        "no reason in {moved_entry:?}"
    );
    assert!(
        moved_entry.contains(&at_work.move_trace),
        "no trace id in {moved_entry:?}"
    );
    let href = browser
        .js(
            r#"const a = document.querySelector('ol#timeline li.timeline-entry[data-kind="transitioned"] a.trace-link'); return a && a.getAttribute('href')"#,
            vec![],
        )
        .await;
    assert_eq!(href.as_str(), Some(trace_link.as_str()));

    // the lower half: timeline, gates, artifacts, context
    browser.dismiss_flash().await;
    browser
        .js(
            "document.getElementById('timeline').scrollIntoView()",
            vec![],
        )
        .await;
    browser.screenshot("ticket-timeline").await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_page_shows_its_tasks_claims_and_gate() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let at_work = ticket_at_work(&app).await;
    let browser = ticket_page(&api, &at_work.ticket, "ticket").await;

    // tasks: one row each; the claimed one names its holder, and the operator may release it
    let tasks = &at_work.tasks;
    assert_eq!(
        browser.count("table#tasks tr[data-task-id]").await,
        tasks.len() as u64
    );
    for task in tasks {
        let row = browser
            .text(&format!(r#"table#tasks tr[data-task-id="{}"]"#, task.id))
            .await;
        assert!(row.contains(&task.task_type), "{row}");
    }
    let claimed_row = format!(r#"table#tasks tr[data-task-id="{}"]"#, tasks[0].id);
    assert_eq!(
        browser.text(&format!("{claimed_row} .task-status")).await,
        "claimed"
    );
    let holder = browser.text(&format!("{claimed_row} .task-claim")).await;
    assert!(holder.contains(ACTOR), "{holder}");
    assert_eq!(
        browser
            .count(&format!("{claimed_row} button.release-claim"))
            .await,
        1
    );
    assert_eq!(browser.count("form#force-transition").await, 1);

    // the gate: not met (its tasks are open and its artifact is missing), with its reasons
    let gate = browser
        .text(r#"#gates .gate-result[data-phase="PHASE_REQUIREMENTS"]"#)
        .await;
    let status = at_work.gate_status.as_str();
    assert!(gate.contains(&format!("gate {status}")), "{gate}");
    assert!(gate.contains("requirements not met"), "{gate}");
    assert!(
        gate.contains("missing artifact: requirements_document"),
        "{gate}"
    );

    browser.dismiss_flash().await;
    browser.assert_controls_labelled().await;
    browser.screenshot("ticket").await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

/// The body of the request [`dead_lettered_request`] sends.
const NOT_JSON: &[u8] = b"this is { not json";

/// Publishes an undecodable request with a message id, which the worker dead-letters; returns
/// the id and the dead letter as listed.
async fn dead_lettered_request(app: &TestApp, api: &Api) -> (String, DeadLetterView) {
    let message_id = format!("board-dead-{}", Uuid::new_v4().simple());
    app.client
        .publish_raw(
            CREATE,
            NOT_JSON,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(message_id.as_str().into()),
        )
        .await
        .expect("raw message published");
    let listed = wait_for_dead_letter(api, &message_id).await;
    assert!(listed.reason.is_some(), "{listed:?}");
    (message_id, listed)
}

/// The dead letter's entry on the operations page.
fn dead_letter_entry(message_id: &str) -> String {
    format!(r#"article.dead-letter[data-message-id="{message_id}"]"#)
}

/// A browser that went to the operations page and signed in there as `agent`; it shows the
/// dead letter.
async fn operations_signed_in(api: &Api, name: &str, message_id: &str) -> Browser {
    let browser = Browser::start(&api.base, name).await;
    browser.goto("/#/operations").await;
    browser.sign_in(TOKEN, AGENT).await;
    browser
        .wait_for("the dead letter", &dead_letter_entry(message_id))
        .await;
    let url = browser.client.current_url().await.expect("the URL");
    assert_eq!(
        url.fragment(),
        Some("/operations"),
        "sign-in returns to where the agent was going"
    );
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_a_dead_letter_without_replay_and_is_refused_one() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let (message_id, listed) = dead_lettered_request(&app, &api).await;
    let browser = operations_signed_in(&api, "operations-agent", &message_id).await;
    let entry = dead_letter_entry(&message_id);
    assert_eq!(browser.text("#whoami").await, format!("{AGENT} · agent"));
    let reason = browser.text(&format!("{entry} .reason")).await;
    assert!(
        !reason.trim().is_empty() && reason != "—",
        "no reason shown: {reason}"
    );
    assert_eq!(
        listed.reason,
        Some(reason),
        "the reason shown is the queue's"
    );
    assert_eq!(browser.text(&format!("{entry} .routing-key")).await, CREATE);
    assert_eq!(
        browser.text(&format!("{entry} pre.body")).await.as_bytes(),
        NOT_JSON
    );
    assert_eq!(
        browser.count("button.replay").await,
        0,
        "an agent has no Replay"
    );

    // asked anyway, from the page with the agent's token, the replay is refused
    let refused = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/dead-letters/' + encodeURIComponent(arguments[0]) + '/replay', {
               method: 'POST',
               headers: {
                 Authorization: 'Bearer ' + sessionStorage.getItem('phaseflow.token'),
                 'Content-Type': 'application/json',
               },
               body: '{}',
             })
               .then((response) => response.text().then((text) => done({status: response.status, body: text})))
               .catch((error) => done({error: String(error)}));",
            vec![json!(message_id)],
        )
        .await
        .expect("the fetch ran");
    assert_eq!(refused["status"], 403, "{refused}");
    let refusal: ErrorBody =
        serde_json::from_str(refused["body"].as_str().unwrap_or_default()).expect("an error body");
    assert_eq!(refusal.error.code, "forbidden", "{refusal:?}");
    browser.dismiss_flash().await;
    browser
        .js(
            "document.querySelector(arguments[0]).scrollIntoView()",
            vec![json!(entry)],
        )
        .await;
    browser.screenshot("operations-agent").await;
    wait_for_dead_letter(&api, &message_id).await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_dead_letter_and_the_replay_is_on_the_record() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let (message_id, _) = dead_lettered_request(&app, &api).await;
    let browser = operations_signed_in(&api, "operations", &message_id).await;
    let entry = dead_letter_entry(&message_id);

    // signed out, the token is gone; the operator signs in and replays it
    browser.click("button#sign-out").await;
    browser
        .wait_for("the sign-in form", "form#sign-in input#token")
        .await;
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('phaseflow.token')", vec![])
            .await,
        Value::Null
    );
    browser.sign_in(OPERATOR_TOKEN, OPERATOR).await;
    browser.click(r##"nav a[href="#/operations"]"##).await;
    let replay = format!("{entry} button.replay");
    browser.wait_for("the Replay button", &replay).await;
    browser.click(&replay).await;
    browser
        .wait_js(
            "the dead letter gone and the flash saying so",
            "const flash = document.querySelector('#flash.flash-ok');
             return document.querySelector(arguments[0]) === null && flash !== null &&
               flash.textContent.includes('replayed');",
            vec![json!(entry)],
            PAGE_WAIT,
        )
        .await;
    let flash = browser.text("#flash").await;
    assert!(flash.contains(&message_id), "{flash}");
    // the replay is on the record, with the operator, once the page refreshes
    let replayed = format!(r#"#replays tr.replay[data-message-id="{message_id}"]"#);
    browser.click("#refresh").await;
    browser
        .wait_for("the replay on the record", &replayed)
        .await;
    let recorded = browser.text(&replayed).await;
    assert!(recorded.contains(OPERATOR), "{recorded}");
    browser.screenshot("operations").await;

    // it went back to the worker, which dead-letters it again (it is still not JSON): the new
    // dead letter carries the operator who replayed it
    let deadline = Instant::now() + WAIT;
    let again = loop {
        if let Some(letter) = take_dead_letter(&app, &message_id).await {
            break letter;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed message was not dead-lettered again within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.body, NOT_JSON);
    let headers = &again.headers;
    assert_eq!(
        headers.get("x-phaseflow-replayed-by").map(String::as_str),
        Some(OPERATOR),
        "{headers:?}"
    );
    assert!(headers.contains_key("x-phaseflow-error"), "{headers:?}");
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

/// A dead letter read off the queue.
struct DeadLetter {
    body: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// Takes the dead letter with `message_id` off the test's dead-letter queue, if it is there.
async fn take_dead_letter(app: &TestApp, message_id: &str) -> Option<DeadLetter> {
    let connection = phaseflow_client::broker::connect(AMQP_URL, 30, "phaseflow board test")
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let mut found = None;
    while let Some(message) = channel
        .basic_get(
            app.settings.amqp.dead_letter_queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get on the dead-letter queue")
    {
        let delivery = message.delivery;
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string());
        if id.as_deref() == Some(message_id) {
            let headers = delivery
                .properties
                .headers()
                .as_ref()
                .map(|table| {
                    table
                        .inner()
                        .iter()
                        .map(|(name, value)| {
                            let text = match value {
                                AMQPValue::LongString(text) => text.to_string(),
                                other => format!("{other:?}"),
                            };
                            (name.to_string(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            found = Some(DeadLetter {
                body: delivery.data.clone(),
                headers,
            });
            break;
        }
    }
    let _ = connection.close(200, "read".into()).await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_title_is_shown_as_text() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let title = r#"<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>"#;
    let ticket = app.create_ticket(title).await;

    let browser = Browser::start(&api.base, "escaping").await;
    browser.goto("/").await;
    browser.sign_in(TOKEN, AGENT).await;
    let card = card("PHASE_BACKLOG", &ticket);
    browser.wait_for("the card", &card).await;
    // an image would fail to load at once; give its handler time to run
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        browser.text_of(&format!("{card} a.card-title")).await,
        json!(title)
    );
    assert_eq!(browser.count(".card img").await, 0);
    assert_eq!(browser.count(".card b").await, 0);
    assert_eq!(
        browser
            .js("return typeof document.body.dataset.pwned", vec![])
            .await,
        json!("undefined")
    );

    browser.click(&format!("{card} a.card-title")).await;
    browser
        .wait_js(
            "the ticket's title",
            "const h = document.querySelector('h1#ticket-title'); return h && h.textContent === arguments[0]",
            vec![json!(title)],
            PAGE_WAIT,
        )
        .await;
    browser
        .wait_for("the timeline", "ol#timeline li.timeline-entry")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(browser.count("#main img").await, 0);
    assert_eq!(browser.count("#main b").await, 0);
    assert_eq!(
        browser
            .js("return typeof document.body.dataset.pwned", vec![])
            .await,
        json!("undefined")
    );
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_columns_and_the_priority_filter_follow_the_workflow_endpoint() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let workflow: WorkflowView = api.read_as("/api/v1/workflow").await;
    let phases: Vec<Value> = workflow
        .phases
        .iter()
        .map(|phase| json!([phase.phase_id, phase.name]))
        .collect();
    let priorities = json!(workflow.priorities);
    assert_eq!(priorities, json!(["LOW", "MEDIUM", "HIGH", "CRITICAL"]));

    // every module of the page loads (a broken import shows no sign-in form at all)
    let browser = Browser::start(&api.base, "workflow").await;
    browser.goto("/").await;
    browser.sign_in(TOKEN, AGENT).await;
    let shown = browser
        .wait_js(
            "a column per phase of the workflow",
            "const columns = [...document.querySelectorAll('section.column')];
             return columns.length === arguments[0] &&
               columns.map((c) => [c.dataset.phase, c.querySelector('h2').textContent]);",
            vec![json!(phases.len())],
            PAGE_WAIT,
        )
        .await;
    assert_eq!(shown, json!(phases), "the columns, in the workflow's order");
    let options = browser
        .js(
            "return [...document.querySelectorAll('#filter-priority option')]
               .map((o) => o.value).filter((v) => v !== '')",
            vec![],
        )
        .await;
    assert_eq!(options, priorities, "the priority filter's choices");
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_a_content_security_policy() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;

    let response = api
        .http
        .get(format!("{}/", api.base))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("text/html"),
        "{headers:?}"
    );
    let policy = header("content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let page = response.text().await.expect("the page");
    assert!(page.contains(r#"<script type="module" src="/board/main.js"></script>"#));

    // the modules it imports come with the same headers, as JavaScript (a module served as
    // anything else does not run)
    for module in [
        "/board/main.js",
        "/board/lib/dom.js",
        "/board/pages/ticket.js",
    ] {
        let response = api
            .http
            .get(format!("{}{module}", api.base))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{module}");
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            header("content-type").starts_with("text/javascript"),
            "{module}: {headers:?}"
        );
        assert_eq!(header("content-security-policy"), policy, "{module}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{module}");
        assert_eq!(header("cache-control"), "no-cache", "{module}");
    }

    api.stop().await;
    app.shutdown().await;
}
