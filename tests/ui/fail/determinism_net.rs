use durable::prelude::*;

/// Stands in for the `reqwest` crate: the check goes by path, not by crate.
mod reqwest {
    pub async fn get(_url: &str) -> Result<String, std::io::Error> {
        Ok(String::new())
    }
}

#[orchestrator]
async fn fetch(_ctx: OrchestrationContext) -> Result<String, Error> {
    let _socket = std::net::TcpStream::connect("127.0.0.1:8080");
    let body = reqwest::get("http://127.0.0.1:8080/").await?;
    Ok(body)
}

fn main() {}
