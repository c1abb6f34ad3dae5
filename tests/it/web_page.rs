//! The web page's doors (issue 16), without a browser: it wants the API token once and answers
//! with a signed session cookie that opens only the page; the API keeps wanting the bearer
//! header; a state change is accepted only from the page's own origin; every page carries a
//! content security policy. The browser tests (`web_browser.rs`) drive the same page in Chromium.

use reqwest::redirect::Policy;

const TOKEN: &str = "router-test-token";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Signs in and returns the `name=value` of the session cookie.
async fn sign_in(url: &str) -> String {
    let r = client()
        .post(format!("{url}/ui/login"))
        .header("origin", url)
        .form(&[("token", TOKEN), ("name", "Ana"), ("next", "/ui/repos")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/ui/repos", "back where the user was going");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie never holds the token: {cookie}");
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_page_wants_the_token_once_and_its_cookie_opens_only_the_page() {
    let (url, shutdown, _repos) = crate::router::serve().await;
    let c = client();
    let r = c.get(format!("{url}/ui/apps?status=Failed")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/ui/login?next=/ui/apps%3Fstatus%3DFailed");
    assert_eq!(c.get(format!("{url}/ui/events")).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(c.get(format!("{url}/")).send().await.unwrap().headers()["location"], "/ui/apps");

    let login = c.get(format!("{url}/ui/login")).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(login.text().await.unwrap().contains("name=\"token\""));

    let wrong =
        c.post(format!("{url}/ui/login")).header("origin", &url).form(&[("token", "guess"), ("next", "/ui/apps")]).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 303);
    assert!(wrong.headers().get("set-cookie").is_none(), "a wrong token gets no session");
    assert!(wrong.headers()["location"].to_str().unwrap().contains("error="));
    let no_origin = c.post(format!("{url}/ui/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert_eq!(no_origin.status().as_u16(), 403, "a sign-in from no page is refused");
    let elsewhere = c
        .post(format!("{url}/ui/login"))
        .header("origin", "http://localhost:1")
        .form(&[("token", TOKEN), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 403);

    let cookie = sign_in(&url).await;
    for page in ["/ui/apps", "/ui/deployments", "/ui/repos", "/ui/apps?q=web&kind=ecs"] {
        let r = c.get(format!("{url}{page}")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{page}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.unwrap();
        assert!(html.contains("Ana (web page)") && html.contains("id=\"live\""), "{page}: {html}");
    }
    let fragment = c.get(format!("{url}/ui/apps")).header("cookie", &cookie).header("x-gitmoxi-fragment", "live").send().await.unwrap();
    let fragment = fragment.text().await.unwrap();
    assert!(!fragment.contains("<html") && fragment.contains("apps"), "only the live part: {fragment}");
    let api = c.get(format!("{url}/api/v2/apps")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(api.status().as_u16(), 401, "the cookie does not open the API (no CSRF through it)");
    let forged = cookie.replace("Ana", "Bob");
    let r = c.get(format!("{url}/ui/apps")).header("cookie", forged.replace("QW5h", "Qm9i")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303, "a cookie changed by hand is no session");

    let mut events = c.get(format!("{url}/ui/events")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = events.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: hello"), "{first:?}");

    let out = c.post(format!("{url}/ui/logout")).header("origin", &url).header("cookie", &cookie).send().await.unwrap();
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    shutdown.cancel();
}

#[tokio::test]
async fn a_button_of_the_page_is_obeyed_only_from_the_pages_own_origin() {
    let (url, shutdown, _repos) = crate::router::serve().await;
    let c = client();
    let cookie = sign_in(&url).await;
    let body = serde_json::json!({"command": "sync"});
    let send = |origin: Option<&str>, cookie: Option<&str>| {
        let mut r = c.post(format!("{url}/ui/command")).json(&body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(k) = cookie {
            r = r.header("cookie", k);
        }
        r.send()
    };
    assert_eq!(send(None, Some(&cookie)).await.unwrap().status().as_u16(), 403, "no Origin");
    assert_eq!(send(Some("http://localhost:9"), Some(&cookie)).await.unwrap().status().as_u16(), 403, "another origin of this machine");
    assert_eq!(send(Some(&url), None).await.unwrap().status().as_u16(), 401, "signed out");
    let ok = send(Some(&url), Some(&cookie)).await.unwrap();
    // the command itself ran: this server tracks no repository, and says so
    assert_eq!(ok.status().as_u16(), 404);
    let answer: serde_json::Value = ok.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("no tracked repository"), "{answer}");
    let unknown = c
        .post(format!("{url}/ui/command"))
        .header("origin", &url)
        .header("cookie", &cookie)
        .json(&serde_json::json!({"command": "approve", "app": "prod/web", "by": "someone else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400, "the page records its signed-in name; a body cannot choose another");
    shutdown.cancel();
}

#[tokio::test]
async fn named_tokens_say_who_answers_and_only_approvers_may() {
    use gitmoxi::http::access::Access;
    let (ana, bob) = ("ana-token-0123456789", "bob-token-0123456789");
    let access =
        Access::new(Some(TOKEN.into()), [("ana".to_string(), ana.to_string()), ("bob".to_string(), bob.to_string())], vec!["ana".into()]);
    let (url, shutdown, _repos) = crate::router::serve_with_access(Vec::new(), access).await;
    let c = client();
    for token in [TOKEN, ana, bob] {
        assert_eq!(
            c.get(format!("{url}/api/v2/apps")).bearer_auth(token).send().await.unwrap().status().as_u16(),
            200,
            "every token opens the API"
        );
    }
    let approve = serde_json::json!({"command": "approve", "app": "prod/web", "by": "someone"});
    let by_main = c.post(format!("{url}/api/v2/commands")).bearer_auth(TOKEN).json(&approve).send().await.unwrap();
    assert_eq!(by_main.status().as_u16(), 403);
    let why: serde_json::Value = by_main.json().await.unwrap();
    assert!(why["error"].as_str().unwrap().contains("approvers (ana)"), "{why}");
    let by_ana = c.post(format!("{url}/api/v2/commands")).bearer_auth(ana).json(&approve).send().await.unwrap();
    assert_eq!(by_ana.status().as_u16(), 404, "ana passes the approvers check (there is no such app here)");

    // the page: bob signs in as bob, whatever he types, and may not answer gates
    let r = c
        .post(format!("{url}/ui/login"))
        .header("origin", &url)
        .form(&[("token", bob), ("name", "Ana"), ("next", "/ui/apps")])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = c.get(format!("{url}/ui/apps")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("bob (web page)") && !page.contains("Ana (web page)"), "{page}");
    let refused = c
        .post(format!("{url}/ui/command"))
        .header("origin", &url)
        .header("cookie", &cookie)
        .json(&serde_json::json!({"command": "reject", "app": "prod/web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    shutdown.cancel();
}
