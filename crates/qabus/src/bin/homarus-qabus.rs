//! Run the QA bus on 127.0.0.1:<port> (default 0 = any) and print its URL.
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let bus = homarus_qabus::QaBus::start_on(port).await?;
    println!("{}", bus.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
