//! `vercel-sim [ADDR]`: serves the Vercel API simulator on ADDR (default `127.0.0.1:3999`) and
//! prints the identities to use with it.

use std::net::SocketAddr;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3999".to_owned());
    let addr: SocketAddr = match arg.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("vercel-sim: {arg:?} is not a socket address: {e}");
            eprintln!("usage: vercel-sim [ADDR]");
            return ExitCode::from(2);
        }
    };
    let config = vercel_sim::SimConfig::default();
    match vercel_sim::Simulator::start_with(config.clone(), addr).await {
        Ok((local, sim)) => {
            println!("vercel-sim listening on http://{local}");
            println!("user token: {}", config.user_token);
            println!("team token: {} (teamId={})", config.team_token, config.team_id);
            println!("client id: {}", config.client_id);
            sim.wait().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vercel-sim: cannot listen on {addr}: {e}");
            ExitCode::from(1)
        }
    }
}
