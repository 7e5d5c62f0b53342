//! The console's backend over a running server's API (`pxedeck attach`):
//! state from the SSE stream, commands by POST, detail by GET.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::client::{self, SseParser};
use crate::event::Command;
use crate::ident::Mac;
use crate::model::Model;
use crate::tui::{Backend, Feed, Origin};

/// How long after a broken stream the console tries again.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

pub struct RemoteBackend {
    /// The API base URL (`http://127.0.0.1:8081`), no trailing slash.
    url: String,
    token: Option<String>,
}

impl RemoteBackend {
    pub fn new(url: &str, token: Option<String>) -> RemoteBackend {
        RemoteBackend {
            url: url.trim_end_matches('/').to_string(),
            token,
        }
    }
}

impl RemoteBackend {
    /// Every request carries the token: the API reads need it as much as
    /// its commands.
    fn options(&self, timeout: Option<Duration>) -> client::Options {
        client::Options {
            bearer: self.token.clone(),
            timeout,
            ..Default::default()
        }
    }
}

impl Backend for RemoteBackend {
    fn origin(&self) -> Origin {
        Origin::Attached(self.url.clone())
    }

    fn feed(&self) -> mpsc::Receiver<Feed> {
        let (tx, rx) = mpsc::channel(4096);
        let url = self.url.clone();
        let opts = self.options(None);
        tokio::spawn(async move {
            loop {
                let why = match follow_stream(&url, &opts, &tx).await {
                    Ok(()) => "the event stream ended".to_string(),
                    Err(e) => e,
                };
                if tx.send(Feed::Lost(why)).await.is_err() {
                    return;
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
        rx
    }

    async fn execute(&self, command: Command) -> Result<String, String> {
        let body = serde_json::to_vec(&command).map_err(|e| e.to_string())?;
        let opts = self.options(Some(Duration::from_secs(30)));
        let text = client::post(&format!("{}/api/v1/commands", self.url), Some(body), &opts)
            .await
            .map_err(|e| match e {
                client::ClientError::Status(_, body) => api_message(&body),
                other => other.to_string(),
            })?;
        Ok(api_message(&text))
    }

    async fn detail(&self, mac: Mac) -> String {
        let opts = self.options(Some(Duration::from_secs(10)));
        client::get_text(&format!("{}/api/v1/machines/{mac}/served", self.url), &opts)
            .await
            .unwrap_or_else(|e| format!("cannot fetch: {e}"))
    }
}

/// The `message` or `error` of an API JSON answer, else the text itself.
fn api_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.trim().to_string())
}

/// Reads the SSE stream until it ends: `snapshot` then `event`s.
async fn follow_stream(
    url: &str,
    opts: &client::Options,
    tx: &mpsc::Sender<Feed>,
) -> Result<(), String> {
    let res = client::send(
        hyper::Method::GET,
        &format!("{url}/api/v1/events"),
        None,
        opts,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        let why = body
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .filter(|t| !t.is_empty())
            .map_or_else(String::new, |t| format!(": {t}"));
        return Err(format!("the server answered {status}{why}"));
    }
    let mut body = res.into_body();
    let mut parser = SseParser::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for (kind, data) in parser.push(&data) {
            let feed = match kind.as_str() {
                "snapshot" => {
                    let mut model: Model =
                        serde_json::from_str(&data).map_err(|e| format!("snapshot: {e}"))?;
                    model.reindex();
                    Feed::Snapshot(Box::new(model))
                }
                "event" => Feed::Event(Arc::new(
                    serde_json::from_str(&data).map_err(|e| format!("event: {e}"))?,
                )),
                _ => continue,
            };
            if tx.send(feed).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages() {
        assert_eq!(
            api_message(r#"{"ok":true,"message":"adopted 1 machine(s)"}"#),
            "adopted 1 machine(s)"
        );
        assert_eq!(api_message(r#"{"ok":false,"error":"dup"}"#), "dup");
        assert_eq!(api_message("plain\n"), "plain");
    }

    #[test]
    fn the_url_loses_its_trailing_slash() {
        let b = RemoteBackend::new("http://127.0.0.1:8081/", None);
        assert_eq!(b.origin(), Origin::Attached("http://127.0.0.1:8081".into()));
    }
}
