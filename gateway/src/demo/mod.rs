//! In-process demo upstreams for `tollgate demo` (and the tests): two MCP servers (math and
//! text, on one loopback listener) and an Anthropic-compatible echo model on another.

pub mod command;
pub mod echo_model;
pub mod mcp_math;
pub mod mcp_text;

use std::net::SocketAddr;

pub use echo_model::{serve_echo_model, EchoOptions};
pub use mcp_math::serve_mcp_math;

/// Running demo upstreams on their own thread and Tokio runtime. Dropping it (or `shutdown`)
/// stops them.
#[derive(Debug)]
pub struct DemoUpstreams {
    mcp_addr: SocketAddr,
    llm_addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoUpstreams {
    /// Binds both servers (port 0 picks a free port) and returns once both listen.
    pub fn start(
        mcp_addr: SocketAddr,
        llm_addr: SocketAddr,
        echo: EchoOptions,
    ) -> std::io::Result<Self> {
        // Bound with std listeners so that `start` also works when called from async code.
        let mcp = std::net::TcpListener::bind(mcp_addr)?;
        let llm = std::net::TcpListener::bind(llm_addr)?;
        mcp.set_nonblocking(true)?;
        llm.set_nonblocking(true)?;
        let (mcp_addr, llm_addr) = (mcp.local_addr()?, llm.local_addr()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("tollgate-demo-upstreams".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listeners = (
                        tokio::net::TcpListener::from_std(mcp),
                        tokio::net::TcpListener::from_std(llm),
                    );
                    let (mcp, llm) = match listeners {
                        (Ok(mcp), Ok(llm)) => (mcp, llm),
                        (Err(error), _) | (_, Err(error)) => {
                            tracing::error!(%error, "demo upstreams cannot listen");
                            return;
                        }
                    };
                    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    let mcp_server = serve_mcp_math(mcp, until_stopped(stopped.clone()));
                    let llm_server = serve_echo_model(llm, echo, until_stopped(stopped.clone()));
                    let servers = async {
                        let (a, b) = tokio::join!(mcp_server, llm_server);
                        for result in [a, b] {
                            if let Err(error) = result {
                                tracing::error!(%error, "demo upstream failed");
                            }
                        }
                    };
                    // Open streams (an MCP client's GET stream) would hold a graceful shutdown
                    // forever: give them a short grace period, then drop everything.
                    let deadline = async {
                        until_stopped(stopped).await;
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    };
                    tokio::select! {
                        () = servers => {}
                        () = deadline => {}
                    }
                });
            })?;
        Ok(Self {
            mcp_addr,
            llm_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Address of the MCP server (path `/mcp`).
    pub fn mcp_addr(&self) -> SocketAddr {
        self.mcp_addr
    }

    /// Address of the echo model (paths `/v1/...`).
    pub fn llm_addr(&self) -> SocketAddr {
        self.llm_addr
    }

    /// Stops both servers and waits for their thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DemoUpstreams {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
