//! A real browser for UI tests: headless Chromium driven over WebDriver by
//! chromedriver, both child processes of the test, on a free loopback port.
//!
//! The API is synchronous (each call runs on the browser's own current-thread
//! tokio runtime), so a test reads as the steps a person takes: `goto`, find
//! a field by its label, type keys (Enter and F-keys included), click, read
//! text, `wait_for` a condition, `screenshot` to
//! `target/test-output/<test>/<NN>-<step>.png`, and `check_accessibility`
//! with the vendored axe-core (`tests/assets/axe-core`, MPL-2.0).
//!
//! Finding the programs: `CAJA_CHROMEDRIVER` / `CAJA_CHROMIUM`, else `PATH`
//! (`chromedriver`; `chromium`, `chromium-browser`, `google-chrome`). When one
//! is missing, [`Browser::start`] fails if `CAJA_REQUIRE_EXTERNAL=1` (as
//! `scripts/test.sh` sets it) and otherwise prints a loud skip line and
//! returns `Ok(None)`: the test returns early.
//!
//! Dropping a [`Browser`] ends the WebDriver session (Chromium quits), then
//! kills chromedriver's whole process group (anything left of Chromium with
//! it) and removes the temporary profile.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The minified axe-core, injected by [`Browser::check_accessibility`].
const AXE_JS: &str = include_str!("../assets/axe-core/axe.min.js");

/// The axe-core rules every page must pass: labels, contrast, names of
/// buttons and links, the document's title and language, image alternatives.
pub const A11Y_RULES: &[&str] = &[
    "label",
    "select-name",
    "aria-input-field-name",
    "color-contrast",
    "button-name",
    "input-button-name",
    "link-name",
    "document-title",
    "html-has-lang",
    "html-lang-valid",
    "image-alt",
];

/// Chromium's flags: headless, no sandbox (we run as root in CI), nothing
/// reaching the network on its own.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--lang=es-DO",
];

/// How long a single WebDriver command may take before the test fails (a
/// loaded 2-core machine is slow, a hung browser must still end the test).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`Browser::wait_for`] callers that have no better idea.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
/// How often [`Browser::wait_for`] polls its condition.
const POLL: Duration = Duration::from_millis(100);

/// Keys for [`Browser::type_keys`] and [`El::type_keys`] (WebDriver's code
/// points, W3C WebDriver §17.4.2).
pub mod keys {
    pub const ENTER: &str = "\u{e007}";
    pub const TAB: &str = "\u{e004}";
    pub const ESCAPE: &str = "\u{e00c}";
    pub const BACKSPACE: &str = "\u{e003}";
    pub const F1: &str = "\u{e031}";
    pub const F2: &str = "\u{e032}";
    pub const F3: &str = "\u{e033}";
    pub const F4: &str = "\u{e034}";
    pub const F5: &str = "\u{e035}";
    pub const F6: &str = "\u{e036}";
    pub const F7: &str = "\u{e037}";
    pub const F8: &str = "\u{e038}";
    pub const F9: &str = "\u{e039}";
    pub const F10: &str = "\u{e03a}";
    pub const F11: &str = "\u{e03b}";
    pub const F12: &str = "\u{e03c}";
}

/// What went wrong with the browser or the page.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{program} not found (set {var} or put it on PATH); CAJA_REQUIRE_EXTERNAL=1 makes this a failure")]
    Missing {
        program: &'static str,
        var: &'static str,
    },
    #[error("starting chromedriver/Chromium: {0}")]
    Start(String),
    #[error("webdriver: {what}: {detail}")]
    WebDriver { what: String, detail: String },
    #[error("timed out after {waited_ms} ms waiting for {what}{last}")]
    Timeout {
        what: String,
        waited_ms: u128,
        last: String,
    },
    #[error("accessibility check of {page}: {report}")]
    Accessibility { page: String, report: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

fn wd(what: impl Into<String>) -> impl FnOnce(fantoccini::error::CmdError) -> BrowserError {
    let what = what.into();
    move |e| BrowserError::WebDriver {
        what,
        detail: e.to_string(),
    }
}

/// Whether missing external programs fail the test (`CAJA_REQUIRE_EXTERNAL=1`).
pub fn external_required() -> bool {
    std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// The program named by `var`, else the first of `names` found on `PATH`.
pub fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `target/test-output/<test>/`: beside the test executable's target
/// directory (`<target>/<profile>/deps/<exe>`), created if needed
/// ([`Browser::start`] empties it of an earlier run's screenshots).
pub fn output_dir(test: &str) -> Result<PathBuf, BrowserError> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            let mut dir = exe.parent()?.to_path_buf();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            dir.parent().map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-output").join(test);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes what an earlier run of the test left in its folder (screenshots,
/// accessibility reports), so the folder shows this run only.
fn clear_output(dir: &Path) -> Result<(), BrowserError> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".png") || (name.starts_with("a11y-") && name.ends_with(".txt")) {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// chromedriver (own process group) with its Chromium, and a WebDriver session.
#[derive(Debug)]
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    out: PathBuf,
    test: String,
    step: std::cell::Cell<u32>,
}

impl Browser {
    /// Starts chromedriver and headless Chromium for the test `test` (names
    /// its output folder). `Ok(None)`: a program is missing and
    /// `CAJA_REQUIRE_EXTERNAL` is not `1` — the skip line is printed, the
    /// caller returns.
    pub fn start(test: &str) -> Result<Option<Browser>, BrowserError> {
        let driver = find_program("CAJA_CHROMEDRIVER", &["chromedriver"]);
        let chromium = find_program(
            "CAJA_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let missing = match (&driver, &chromium) {
            (None, _) => Some(("chromedriver", "CAJA_CHROMEDRIVER")),
            (_, None) => Some(("Chromium", "CAJA_CHROMIUM")),
            _ => None,
        };
        if let Some((program, var)) = missing {
            if external_required() {
                return Err(BrowserError::Missing { program, var });
            }
            eprintln!(
                "\n*** SKIPPED {test}: {program} not found (set {var} or install it; \
                 scripts/test.sh does) ***\n"
            );
            return Ok(None);
        }
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            return Ok(None);
        };
        let out = output_dir(test)?;
        clear_output(&out)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut last = String::new();
        // A port found free may be taken before chromedriver binds it: retry.
        for _attempt in 0..3 {
            let profile = tempfile::Builder::new()
                .prefix("caja-chromium-")
                .tempdir()?;
            let port = free_port()?;
            let mut child = spawn_driver(&driver, port, &out)?;
            match rt.block_on(connect(&chromium, port, profile.path(), &mut child)) {
                Ok(client) => {
                    return Ok(Some(Browser {
                        rt,
                        client: Some(client),
                        driver: child,
                        _profile: profile,
                        out,
                        test: test.to_owned(),
                        step: std::cell::Cell::new(0),
                    }))
                }
                Err(e) => {
                    kill_group(&mut child);
                    last = e.to_string();
                }
            }
        }
        Err(BrowserError::Start(last))
    }

    fn client(&self) -> &Client {
        // Only `Drop` takes the client out.
        self.client.as_ref().expect("browser session open")
    }

    fn run<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> Result<T, BrowserError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, fut).await })
        {
            Ok(r) => r.map_err(wd(what)),
            Err(_) => Err(BrowserError::Timeout {
                what: format!("webdriver: {what}"),
                waited_ms: COMMAND_TIMEOUT.as_millis(),
                last: String::new(),
            }),
        }
    }

    /// The folder this test's screenshots go to.
    pub fn output(&self) -> &Path {
        &self.out
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.run(&format!("goto {url}"), self.client().goto(url))
    }

    /// The document's title.
    pub fn title(&self) -> Result<String, BrowserError> {
        self.run("title", self.client().title())
    }

    /// The first element matching the CSS selector.
    pub fn find(&self, css: &str) -> Result<El<'_>, BrowserError> {
        let e = self.run(
            &format!("find {css}"),
            self.client().find(Locator::Css(css)),
        )?;
        Ok(El {
            b: self,
            e,
            name: css.to_owned(),
        })
    }

    /// Every element matching the CSS selector (maybe none).
    pub fn find_all(&self, css: &str) -> Result<Vec<El<'_>>, BrowserError> {
        let all = self.run(
            &format!("find all {css}"),
            self.client().find_all(Locator::Css(css)),
        )?;
        Ok(all
            .into_iter()
            .map(|e| El {
                b: self,
                e,
                name: css.to_owned(),
            })
            .collect())
    }

    /// Whether an element matches the CSS selector now.
    pub fn exists(&self, css: &str) -> Result<bool, BrowserError> {
        Ok(!self.find_all(css)?.is_empty())
    }

    /// The form control labelled `label` (exact text of a `<label>`, trimmed,
    /// through `for=` or by nesting; or an `aria-label`), as a person finds
    /// it: a rendered one first (a closed dialog may reuse the label).
    pub fn find_by_label(&self, label: &str) -> Result<El<'_>, BrowserError> {
        let found = self.execute(
            r#"const want = arguments[0].trim();
               const found = [];
               for (const l of document.querySelectorAll('label')) {
                 if (l.textContent.trim() === want && l.control) found.push(l.control);
               }
               for (const e of document.querySelectorAll('[aria-label]')) {
                 if (e.getAttribute('aria-label').trim() === want) found.push(e);
               }
               // A person sees only rendered controls: those first.
               return found.find(e => e.getClientRects().length > 0) || found[0] || null;"#,
            vec![json!(label)],
        )?;
        if found.is_null() {
            return Err(BrowserError::WebDriver {
                what: format!("find by label {label:?}"),
                detail: "no control has this label".into(),
            });
        }
        // W3C WebDriver's element reference key (§12.2).
        let id = found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .ok_or_else(|| BrowserError::WebDriver {
                what: format!("find by label {label:?}"),
                detail: format!("not an element reference: {found}"),
            })?
            .to_owned();
        let e = Element::from_element_id(self.client().clone(), id.into());
        Ok(El {
            b: self,
            e,
            name: format!("label {label:?}"),
        })
    }

    /// Types into the focused element, as a keyboard (or a barcode scanner
    /// in keyboard-wedge mode) would: text and [`keys`] mixed.
    pub fn type_keys(&self, keys: &str) -> Result<(), BrowserError> {
        let active = self.run("active element", self.client().active_element())?;
        self.run(&format!("type {keys:?}"), active.send_keys(keys))
    }

    /// The visible text of the first element matching the CSS selector.
    pub fn text(&self, css: &str) -> Result<String, BrowserError> {
        self.find(css)?.text()
    }

    /// Runs a script in the page (`arguments[i]` are `args`) and returns
    /// what it returns.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.run("execute script", self.client().execute(script, args))
    }

    /// Polls `cond` every 100 ms until it returns `Ok(true)`, for at most
    /// `timeout`. Errors from `cond` count as "not yet" (an element not
    /// rendered yet); the last one is reported on timeout, and a screenshot
    /// `NN-timeout_<what>.png` shows the page as it was.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Browser) -> Result<bool, BrowserError>,
    ) -> Result<(), BrowserError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            match cond(self) {
                Ok(true) => return Ok(()),
                Ok(false) => last.clear(),
                Err(e) => last = format!(" (last error: {e})"),
            }
            if start.elapsed() >= timeout {
                // What the page looked like, for the person reading the failure.
                let _ = self.screenshot(&format!("timeout {what}"));
                return Err(BrowserError::Timeout {
                    what: what.to_owned(),
                    waited_ms: start.elapsed().as_millis(),
                    last,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the text of `css` contains `needle`; returns that text.
    pub fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, BrowserError> {
        let mut seen = String::new();
        let what = format!("{css} to contain {needle:?}");
        let r = self.wait_for(&what, timeout, |b| {
            seen = b.text(css)?;
            Ok(seen.contains(needle))
        });
        match r {
            Ok(()) => Ok(seen),
            Err(BrowserError::Timeout {
                what,
                waited_ms,
                last,
            }) => Err(BrowserError::Timeout {
                what,
                waited_ms,
                last: format!("{last}; its text was {seen:?}"),
            }),
            Err(e) => Err(e),
        }
    }

    /// Saves a PNG of the viewport as `<output>/<NN>-<step>.png` (numbered in
    /// the order taken) and returns its path.
    pub fn screenshot(&self, step: &str) -> Result<PathBuf, BrowserError> {
        self.step.set(self.step.get() + 1);
        let safe: String = step
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.out.join(format!("{:02}-{safe}.png", self.step.get()));
        let png = self.run("screenshot", self.client().screenshot())?;
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Runs axe-core's [`A11Y_RULES`] on the page as it is now and returns
    /// the violations (empty when it passes), one line per failing element.
    pub fn accessibility_violations(&self) -> Result<Vec<String>, BrowserError> {
        let loaded = self.execute("return typeof window.axe === 'object';", vec![])?;
        if loaded != Value::Bool(true) {
            self.execute(AXE_JS, vec![])?;
        }
        let result = self.run(
            "axe.run",
            self.client().execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document, {runOnly: {type: 'rule', values: arguments[0]},
                                      resultTypes: ['violations']})
                     .then(r => done({ok: r.violations.map(v => ({
                         id: v.id, help: v.help,
                         nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))}))
                     .catch(e => done({err: String(e)}));"#,
                vec![json!(A11Y_RULES)],
            ),
        )?;
        if let Some(err) = result.get("err") {
            return Err(BrowserError::WebDriver {
                what: "axe.run".into(),
                detail: err.to_string(),
            });
        }
        let mut out = Vec::new();
        for v in result["ok"].as_array().into_iter().flatten() {
            for n in v["nodes"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{} ({}): {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or(""),
                    n.as_str().unwrap_or("").replace('\n', " ")
                ));
            }
        }
        Ok(out)
    }

    /// Fails with every violation listed when the page does not pass
    /// [`A11Y_RULES`]; `page` names the page or state in the message. The
    /// report is also written to `<output>/a11y-<page>.txt`.
    pub fn check_accessibility(&self, page: &str) -> Result<(), BrowserError> {
        let v = self.accessibility_violations()?;
        if v.is_empty() {
            return Ok(());
        }
        let mut report = format!("{} violation(s) in {}:\n", v.len(), self.test);
        for line in &v {
            let _ = writeln!(report, "  - {line}");
        }
        let safe: String = page
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = std::fs::write(self.out.join(format!("a11y-{safe}.txt")), &report);
        Err(BrowserError::Accessibility {
            page: page.to_owned(),
            report,
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session: chromedriver quits Chromium.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        kill_group(&mut self.driver);
    }
}

/// An element found on the page.
#[derive(Debug)]
pub struct El<'a> {
    b: &'a Browser,
    e: Element,
    name: String,
}

impl El<'_> {
    /// Clicks it (or taps it: chromedriver sends a pointer click). When the
    /// page re-rendered it between the find and the click (a stale element:
    /// the screen redraws its lines on every refresh), it is found again by
    /// its selector and clicked once more; any other error is returned.
    pub fn click(&self) -> Result<(), BrowserError> {
        match self.b.run(&format!("click {}", self.name), self.e.click()) {
            Err(BrowserError::WebDriver { detail, .. }) if detail.contains("stale element") => {
                let again = self.b.find(&self.name)?;
                self.b.run(
                    &format!("click {} (found again)", self.name),
                    again.e.click(),
                )
            }
            other => other,
        }
    }

    /// Focuses it and types `keys` (text and [`keys`] mixed).
    pub fn type_keys(&self, keys: &str) -> Result<(), BrowserError> {
        self.b.run(
            &format!("type {keys:?} into {}", self.name),
            self.e.send_keys(keys),
        )
    }

    /// Chooses the `<option>` with this value of a `<select>`, as picking it
    /// would (value set, `input` and `change` fired). Not by clicking the
    /// `<option>`: in headless Chromium that leaves the native list open,
    /// and it swallows the next keys typed anywhere on the page.
    pub fn select(&self, value: &str) -> Result<(), BrowserError> {
        let what = format!("select {value:?} in {}", self.name);
        let arg = serde_json::to_value(&self.e).map_err(|e| BrowserError::WebDriver {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        let done = self.b.execute(
            r#"const [el, v] = arguments;
               if (![...el.options].some(o => o.value === v)) return false;
               el.focus();
               el.value = v;
               el.dispatchEvent(new Event('input', {bubbles: true}));
               el.dispatchEvent(new Event('change', {bubbles: true}));
               return true;"#,
            vec![arg, json!(value)],
        )?;
        if done == Value::Bool(true) {
            Ok(())
        } else {
            Err(BrowserError::WebDriver {
                what,
                detail: "no such option".into(),
            })
        }
    }

    /// Empties an input.
    pub fn clear(&self) -> Result<(), BrowserError> {
        self.b.run(&format!("clear {}", self.name), self.e.clear())
    }

    /// Its visible text.
    pub fn text(&self) -> Result<String, BrowserError> {
        self.b.run(&format!("text of {}", self.name), self.e.text())
    }

    /// An input's current value.
    pub fn value(&self) -> Result<String, BrowserError> {
        Ok(self
            .b
            .run(&format!("value of {}", self.name), self.e.prop("value"))?
            .unwrap_or_default())
    }

    /// An attribute, if present.
    pub fn attr(&self, name: &str) -> Result<Option<String>, BrowserError> {
        self.b.run(
            &format!("attribute {name} of {}", self.name),
            self.e.attr(name),
        )
    }

    /// Whether it is displayed.
    pub fn is_displayed(&self) -> Result<bool, BrowserError> {
        self.b
            .run(&format!("displayed {}", self.name), self.e.is_displayed())
    }
}

fn free_port() -> Result<u16, BrowserError> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn spawn_driver(driver: &Path, port: u16, out: &Path) -> Result<Child, BrowserError> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(out.join("chromedriver.log"))?;
    // A watchdog shell leads the process group: it runs chromedriver and
    // kills the whole group (Chromium included) as soon as chromedriver or
    // this test process is gone, so a test killed before `Drop` runs
    // (SIGKILL, abort) leaves no browser behind.
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"watch=$1; shift; "$@" & d=$!
               while kill -0 "$watch" 2>/dev/null && kill -0 "$d" 2>/dev/null; do sleep 1; done
               kill -KILL 0"#,
        )
        .arg("caja-chromedriver")
        .arg(std::process::id().to_string())
        .arg(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .arg("--allowed-origins=*")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so drop can kill Chromium with it.
        .process_group(0)
        .spawn()
        .map_err(|e| BrowserError::Start(format!("{}: {e}", driver.display())))
}

async fn connect(
    chromium: &Path,
    port: u16,
    profile: &Path,
    child: &mut Child,
) -> Result<Client, BrowserError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(BrowserError::Start(format!(
                "chromedriver exited at start ({status}); see chromedriver.log"
            )));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(BrowserError::Start(format!(
                "chromedriver did not listen on {addr} within 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.to_string_lossy(),
            "args": args,
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        return Err(BrowserError::Start("capabilities".into()));
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{addr}")),
    )
    .await
    .map_err(|_| BrowserError::Start("new WebDriver session: no answer within 60 s".into()))?
    .map_err(|e| BrowserError::Start(format!("new WebDriver session: {e}")))?;
    Ok(client)
}

/// SIGKILLs the watchdog's process group (chromedriver and any Chromium
/// process still there), then reaps the watchdog.
fn kill_group(child: &mut Child) {
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
