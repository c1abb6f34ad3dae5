//! The web page in a real browser (issue 16): Debian's headless Chromium, driven over WebDriver,
//! against `gitmoxi serve` on moto with a blue/green app behind a real ALB. A person signs in,
//! sees the apps, presses Sync, watches the traffic bar and the timeline move without reloading,
//! approves a gate and sees traffic continue, rolls the next deployment back from the page and
//! sees it happen, reads the failure's diagnosis, and sees "disconnected" when the server goes.
//! What AWS holds is checked after each button. Screenshots: `target/web-screenshots/`.

use crate::moto::{synced, Moto, Server};
use crate::moto_blue_green::{outputs, task_sets, write_app, Watch, PREFIX};
use crate::support::TestRepo;
use crate::webdriver::Browser;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "page-test-token";

/// LINEAR 20 every 2 s, a gate before 60 %.
fn write_gated_app(repo: &TestRepo, image: &str) {
    write_app(repo, image);
    repo.write(
        &format!("{PREFIX}_depdef.json"),
        r#"{"targetGroupArnPairs": [["{{ target_group_arns['web-a'] }}", "{{ target_group_arns['web-b'] }}"],
                         ["{{ target_group_arns['admin-c'] }}", "{{ target_group_arns['admin-d'] }}"]],
  "trafficShiftingConfig": {"type": "LINEAR", "percent": 20, "waitInterval": 2, "approval": {"before": [60], "timeout": "10m"}},
  "stabilityCheck": {"pollInterval": 1, "timeout": 60}}
"#,
    );
}

const TRAFFIC_GREEN: &str = "const t = document.querySelector('.deployment .traffic'); return t ? Number(t.dataset.green) : null;";

/// A script true once the page's traffic bar shows green `condition` (on `g`); it returns `g`.
fn green_where(condition: &str) -> String {
    format!("const t = document.querySelector('.deployment .traffic'); const g = t ? Number(t.dataset.green) : null; return g !== null && ({condition}) ? g : null;")
}

/// A script true once the app page's status badge says `status`.
fn status_is(status: &str) -> String {
    format!("const s = document.getElementById('app-status'); return s !== null && s.dataset.status === '{status}';")
}
const TIMELINE_LEN: &str = "return document.querySelectorAll('.deployment .timeline li').length;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_watches_a_blue_green_shift_approves_a_gate_and_rolls_back_from_the_page() {
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let (tgs, listeners, rule) = outputs(&infra);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_gated_app(&repo, "nginx:1");
    repo.commit("web: blue/green with a gate");
    let server = Server::start_with_token(&moto, &repo, TOKEN, Vec::new()).await;
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let config = moto.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let ecs = aws_sdk_ecs::Client::new(&config);
    let watch = Watch { elb, listener: listeners["80"].clone(), rule };

    // sign in: the page sends a stranger to the form first
    let browser = Browser::start(1280, 900).await;
    let url = &server.api;
    browser.goto(&format!("{url}/ui/apps")).await;
    assert!(browser.url().await.contains("/ui/login?next=/ui/apps"), "{}", browser.url().await);
    browser.screenshot("1-sign-in").await;
    browser.type_into("#token", TOKEN).await;
    browser.type_into("#name", "Ana").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("the apps", Duration::from_secs(10), &format!("return document.querySelector('tr[data-app=\"{PREFIX}\"]')")).await;
    let row = browser.js(&format!("return document.querySelector('tr[data-app=\"{PREFIX}\"]').innerText"), json!([])).await;
    assert!(row.as_str().unwrap().contains("Synced"), "{row}");
    browser
        .wait_for("the live connection", Duration::from_secs(10), "return document.getElementById('connection').dataset.state === 'live'")
        .await;
    browser.screenshot("2-apps").await;

    // a new commit; Sync from the app page; the bar and the timeline move without a reload
    write_gated_app(&repo, "nginx:2");
    let second = repo.commit("web: nginx 2");
    let app_page = format!("{url}/ui/app?app={PREFIX}&repo=deploys&branch=main");
    browser.goto(&app_page).await;
    browser.js("window.sameLoad = 'still the first load'; return 1;", json!([])).await;
    browser
        .wait_for("the live connection", Duration::from_secs(10), "return document.getElementById('connection').dataset.state === 'live'")
        .await;
    browser.press_and_confirm("button[data-command=sync]").await;
    browser
        .wait_for(
            "the answer to Sync",
            Duration::from_secs(10),
            "const r = document.getElementById('result'); return !r.hidden && r.innerText.includes('sync: accepted');",
        )
        .await;
    let first_green = browser.wait_for("traffic on green", Duration::from_secs(60), &green_where("g > 0")).await;
    let timeline_then = browser.js(TIMELINE_LEN, json!([])).await.as_u64().unwrap();
    browser.wait_for("traffic moving on", Duration::from_secs(30), &green_where(&format!("g > {first_green}"))).await;
    browser.wait_for("the gate", Duration::from_secs(30), &status_is("WaitingForApproval")).await;
    let timeline_now = browser.js(TIMELINE_LEN, json!([])).await.as_u64().unwrap();
    assert!(timeline_now > timeline_then, "the timeline grew live: {timeline_then} → {timeline_now}");
    assert_eq!(browser.js("return window.sameLoad", json!([])).await, "still the first load", "the page never reloaded");
    let held = browser.js(TRAFFIC_GREEN, json!([])).await;
    assert_eq!(held, 40, "the gate before 60 % holds at 40 %");
    assert_eq!(watch.green(&tgs["web-b"]).await, 40, "AWS holds 40 % on green too");
    let changes =
        browser.js("const c = document.getElementById('changes-title'); return c ? c.parentElement.innerText : '';", json!([])).await;
    assert!(
        changes.as_str().unwrap().contains("+") && changes.as_str().unwrap().contains("nginx:2"),
        "the diff since the last good commit: {changes}"
    );
    browser.screenshot("3-app-mid-shift-waiting-for-approval").await;

    // approve from the page: traffic goes on to 100 % and the deployment promotes
    browser.press_and_confirm(".gate button[data-command=approve]").await;
    browser.wait_for("traffic past the gate", Duration::from_secs(30), &green_where("g >= 60")).await;
    browser.screenshot("4-app-shifting-after-approval").await;
    browser.wait_for("Synced", Duration::from_secs(60), &status_is("Synced")).await;
    let app = server.wait_app(PREFIX, Duration::from_secs(10), |a| a["applied_commit"] == second.as_str()).await;
    assert_eq!(app["last_outcome"], "succeeded");
    assert_eq!(watch.green(&tgs["web-b"]).await, 100, "AWS sends everything to green");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "blue deleted: {sets:?}");
    assert!(sets[0].task_definition().unwrap().ends_with("web:2"), "{sets:?}");
    let id = app["last_deployment"].as_str().unwrap().to_string();
    let record: serde_json::Value =
        reqwest::Client::new().get(format!("{url}/api/v2/deployments/{id}")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(record["approvals"][0]["by"], "Ana (web page)", "{record}");
    assert_eq!(record["approvals"][0]["via"], "page");
    assert_eq!(record["approvals"][0]["approve"], true);

    // the next deployment: rolled back from the page while it waits at the gate
    write_gated_app(&repo, "nginx:3");
    repo.commit("web: nginx 3");
    browser.press_and_confirm("button[data-command=sync]").await;
    browser.wait_for("the gate", Duration::from_secs(60), &status_is("WaitingForApproval")).await;
    assert_eq!(watch.green(&tgs["web-a"]).await, 40, "this time green is the other target group");
    // the apps list shows the split and the gate too
    browser.goto(&format!("{url}/ui/apps")).await;
    let listed = browser.js(&format!("return document.querySelector('tr[data-app=\"{PREFIX}\"] .traffic').dataset.green"), json!([])).await;
    assert_eq!(listed, "40");
    browser.screenshot("apps-mid-shift").await;
    browser.goto(&app_page).await;
    browser.press_and_confirm("button[data-command=rollback]").await;
    browser.wait_for("Rolled back", Duration::from_secs(60), &status_is("RolledBack")).await;
    assert_eq!(watch.green(&tgs["web-b"]).await, 100, "AWS sends everything back to the version that ran");
    let sets = task_sets(&ecs).await;
    assert_eq!(sets.len(), 1, "the rolled-back green is gone: {sets:?}");
    assert!(sets[0].task_definition().unwrap().ends_with("web:2"), "{sets:?}");

    // the failure's diagnosis: on the app page, and on the deployment's own page
    browser.wait_for("the diagnosis", Duration::from_secs(10), "return document.querySelector('.diagnosis .next-step')").await;
    browser.click("#last-title a").await;
    browser.wait_for("the deployment page", Duration::from_secs(10), "return location.pathname.startsWith('/ui/deployments/')").await;
    let diagnosis = browser.js("return document.querySelector('.diagnosis').innerText", json!([])).await;
    let diagnosis = diagnosis.as_str().unwrap();
    assert!(diagnosis.contains("rolled_back") && diagnosis.contains("Next step"), "{diagnosis}");
    assert!(diagnosis.contains("nginx:3"), "the diff since the last good commit: {diagnosis}");
    browser.screenshot("5-deployment-diagnosis").await;

    // the other pages, and the apps page on a phone
    browser.goto(&format!("{url}/ui/deployments?app={PREFIX}")).await;
    let rows = browser.js("return document.querySelectorAll('tbody tr').length", json!([])).await;
    assert_eq!(rows, 3, "three deployments of the app");
    browser.goto(&format!("{url}/ui/repos")).await;
    let repos = browser.js("return document.querySelector('.repo').innerText", json!([])).await;
    assert!(repos.as_str().unwrap().contains("main"), "{repos}");
    browser.screenshot("6-repositories").await;
    browser.resize(390, 844).await;
    browser.goto(&format!("{url}/ui/apps")).await;
    let overflow = browser.js("return document.documentElement.scrollWidth <= window.innerWidth + 1", json!([])).await;
    assert_eq!(overflow, true, "no sideways scrolling on a phone");
    browser.screenshot("7-apps-phone").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the browser console has errors: {errors:?}");

    // the server goes away: the page says so, visibly
    browser
        .wait_for("the live connection", Duration::from_secs(10), "return document.getElementById('connection').dataset.state === 'live'")
        .await;
    server.stop().await;
    browser.wait_for("the disconnected banner", Duration::from_secs(15), "return !document.getElementById('disconnected').hidden").await;
    browser.screenshot("8-disconnected").await;
}
