//! The egress proxy of a job with a network allow-list (`network: {domains: [...]}`): the
//! container runs on an internal Docker network with no route out, and its only way out is
//! this HTTP proxy, bound on that network's gateway address for the time of the run. It
//! forwards `CONNECT host:port` (HTTPS) and absolute-form `GET http://host/...` requests to
//! allow-listed hosts and answers everything else with 403 and the reason.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shoal_types::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The internal Docker network egress-limited jobs run on.
pub(crate) const EGRESS_NETWORK: &str = "shoal-egress";
/// Largest request head read from the container.
const MAX_HEAD: usize = 16 * 1024;
/// Longest wait for the head and for the upstream connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy; it stops when dropped.
pub(crate) struct EgressProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EgressProxy {
    /// Listens on `ip` (the egress network's gateway) for a job allowed `network`.
    pub(crate) async fn start(ip: IpAddr, network: Network) -> Result<Self> {
        let listener = TcpListener::bind((ip, 0))
            .await
            .map_err(|e| Error::Http(format!("cannot start the egress proxy on {ip}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Http(e.to_string()))?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let network = network.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(conn, &network).await {
                        tracing::debug!(error = %e, "egress proxy connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://ip:port`, for the job's `HTTP_PROXY` and `HTTPS_PROXY`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The target `host:port` of a request line, and whether it is a CONNECT.
fn target(line: &str) -> Option<(String, u16, bool, String)> {
    let mut parts = line.split_whitespace();
    let (method, uri) = (parts.next()?, parts.next()?);
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = uri.rsplit_once(':')?;
        return Some((host.to_owned(), port.parse().ok()?, true, String::new()));
    }
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 80),
    };
    Some((host.to_owned(), port, false, format!("/{path}")))
}

async fn serve(mut conn: TcpStream, network: &Network) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let end = loop {
        let n = tokio::time::timeout(IO_TIMEOUT, conn.read(&mut buf)).await??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEAD {
            return refuse(
                &mut conn,
                "400 Bad Request",
                "the request head is too large",
            )
            .await;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let first = text.lines().next().unwrap_or_default();
    let Some((host, port, connect, path)) = target(first) else {
        return refuse(
            &mut conn,
            "400 Bad Request",
            "only CONNECT host:port and GET http://host/... go through this proxy",
        )
        .await;
    };
    if !network.allows(&host) {
        let why = format!("{host} is not in the job's network allow-list");
        return refuse(&mut conn, "403 Forbidden", &why).await;
    }
    let mut upstream =
        tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((host.as_str(), port))).await??;
    if connect {
        conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
    } else {
        // Absolute form to origin form; the rest of the head and any body as they came.
        let mut words = first.splitn(3, ' ');
        let (method, version) = (
            words.next().unwrap_or("GET"),
            words.nth(1).unwrap_or("HTTP/1.1"),
        );
        let rest = &text[first.len()..];
        upstream
            .write_all(format!("{method} {path} {version}{rest}").as_bytes())
            .await?;
    }
    upstream.write_all(&head[end..]).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

async fn refuse(conn: &mut TcpStream, status: &str, why: &str) -> std::io::Result<()> {
    let body = format!("shoal egress proxy: {why}\n");
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(proxy: &str, request: &str) -> String {
        let mut s = TcpStream::connect(proxy).await.expect("proxy");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn only_allow_listed_hosts_get_through() {
        let origin = TcpListener::bind("127.0.0.1:0").await.expect("origin");
        let port = origin.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = origin.accept().await {
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let body = format!("origin saw {line}");
                let _ = c
                    .write_all(format!("HTTP/1.0 200 OK\r\n\r\n{body}").as_bytes())
                    .await;
            }
        });
        let allow = Network::Domains(vec!["localhost".into()]);
        let proxy = EgressProxy::start(IpAddr::from([127, 0, 0, 1]), allow)
            .await
            .expect("proxy");
        let addr = proxy.url().trim_start_matches("http://").to_owned();
        let ok = ask(
            &addr,
            &format!("GET http://localhost:{port}/x?y HTTP/1.0\r\nHost: localhost\r\n\r\n"),
        )
        .await;
        assert!(ok.contains("origin saw GET /x?y HTTP/1.0"), "{ok}");
        let no = ask(
            &addr,
            &format!("GET http://127.0.0.1:{port}/ HTTP/1.0\r\n\r\n"),
        )
        .await;
        assert!(
            no.starts_with("HTTP/1.1 403")
                && no.contains("127.0.0.1 is not in the job's network allow-list"),
            "{no}"
        );
        let no = ask(&addr, "CONNECT evil.example:443 HTTP/1.1\r\n\r\n").await;
        assert!(no.starts_with("HTTP/1.1 403"), "{no}");
        let bad = ask(&addr, "GET /relative HTTP/1.1\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    }
}
