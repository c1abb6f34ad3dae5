//! Who may call: the API token (`api_token`, named "api_token"), the named tokens of
//! `[api_tokens]` (each person or system its own, so an answer to a gate says who gave it), and
//! `approvers`, the token names that may answer approval gates (empty: every token may).

/// The name the main `api_token` goes by.
pub use crate::runtime::config::MAIN_TOKEN;

/// How long the answer to a wrong token waits (issue 27): a guesser gets about two tries a
/// second per connection. Nothing is locked while it waits.
pub const WRONG_TOKEN_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// The tokens the server accepts, by name, and who may answer gates.
#[derive(Default)]
pub struct Access {
    /// (name, token), the main token first.
    tokens: Vec<(String, String)>,
    approvers: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Access").field("tokens", &names).field("approvers", &self.approvers).finish()
    }
}

impl Access {
    /// `main` is `api_token`; `named` the `[api_tokens]`; `approvers` token names.
    pub fn new(main: Option<String>, named: impl IntoIterator<Item = (String, String)>, approvers: Vec<String>) -> Access {
        let tokens = main.map(|t| (MAIN_TOKEN.to_string(), t)).into_iter().chain(named).collect();
        Access { tokens, approvers }
    }

    /// Only the main token (the tests' and the simple set-up's).
    pub fn single(token: Option<String>) -> Access {
        Access::new(token, Vec::new(), Vec::new())
    }

    /// Whether calls need a token at all.
    pub fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the token `given` is (compared in constant time with every token).
    pub fn who(&self, given: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.tokens {
            if super::reply::constant_time_eq(given.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// [`Access::who`], answering a wrong token only after [`WRONG_TOKEN_DELAY`] (the API's bearer
    /// header and the page's sign-in both use it).
    pub async fn who_or_wait(&self, given: &str) -> Option<&str> {
        let found = self.who(given);
        if found.is_none() {
            tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        }
        found
    }

    /// The token of `name` (a session is signed with it).
    pub fn token_of(&self, name: &str) -> Option<&str> {
        self.tokens.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str())
    }

    /// Whether the caller with token `name` may answer approval gates (`None`: no token is
    /// required on this server, and no list restricts it).
    pub fn may_answer_gates(&self, name: Option<&str>) -> bool {
        self.approvers.is_empty() || name.is_some_and(|n| self.approvers.iter().any(|a| a == n))
    }

    /// The token names that may answer gates (for the refusal).
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }
}

/// The caller of an API request: the name of the token it sent (`None` when the server wants
/// no token, or gmctl's token-less network).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_says_who_calls_and_only_approvers_answer_gates() {
        let access = Access::new(Some("main-secret".into()), [("ana".to_string(), "ana-secret".to_string())], vec!["ana".into()]);
        assert!(access.required());
        assert_eq!(access.who("main-secret"), Some(MAIN_TOKEN));
        assert_eq!(access.who("ana-secret"), Some("ana"));
        assert_eq!(access.who("ana-secre"), None);
        assert!(access.may_answer_gates(Some("ana")));
        assert!(!access.may_answer_gates(Some(MAIN_TOKEN)));
        assert!(!access.may_answer_gates(None));
        assert!(!format!("{access:?}").contains("secret"), "no token in logs");
        let open = Access::single(None);
        assert!(!open.required() && open.may_answer_gates(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrong_token_waits_and_a_right_one_does_not() {
        let access = Access::single(Some("main-secret".into()));
        let start = tokio::time::Instant::now();
        assert_eq!(access.who_or_wait("main-secret").await, Some(MAIN_TOKEN));
        assert_eq!(start.elapsed(), std::time::Duration::ZERO);
        assert_eq!(access.who_or_wait("guess").await, None);
        assert!(start.elapsed() >= WRONG_TOKEN_DELAY);
        // waits overlap: nothing is held while one waits
        let started = tokio::time::Instant::now();
        let (a, b) = tokio::join!(access.who_or_wait("one"), access.who_or_wait("two"));
        assert_eq!((a, b), (None, None));
        assert!(started.elapsed() < WRONG_TOKEN_DELAY * 2);
    }
}
