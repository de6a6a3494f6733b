//! `homarus-mockllm [--port N]`: run the scripted LLM server with its default replies
//! (`MOCK-REPLY <n>`) on 127.0.0.1 until killed; prints `listening on http://127.0.0.1:<port>`.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--port", Some(p)) => match p.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("homarus-mockllm: --port: expected a port number, found {p:?}");
                    std::process::exit(2);
                }
            },
            _ => {
                eprintln!("usage: homarus-mockllm [--port N]");
                std::process::exit(2);
            }
        }
    }
    let server = match homarus_mockllm::MockLlm::start_on(port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("homarus-mockllm: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on http://{}", server.addr);
    let _ = tokio::signal::ctrl_c().await;
}
