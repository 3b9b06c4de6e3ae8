//! Hostile: waits. The binding config's `"do"` says how: `sleep` (`"seconds"`, default 20,
//! then logs how much
//! time passed on both clocks), `sleep_forever` (sleeps in a loop), `far_instant` (polls a
//! monotonic instant far in the future), `tcp` / `udp` (creates a socket), `lookup` (resolves
//! a name), `stdin` (reads stdin to the end). Whatever it tried, it logs what it got.
use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use stagecraft_sdk::prelude::*;

struct Sleeper;

impl Rule for Sleeper {
    fn handle(ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> {
        let what = ctx.config_value()["do"].as_str().unwrap_or("sleep").to_string();
        let (mono, wall) = (Instant::now(), SystemTime::now());
        match what.as_str() {
            "sleep" => {
                let seconds = ctx.config_value()["seconds"].as_u64().unwrap_or(20);
                std::thread::sleep(Duration::from_secs(seconds));
                let slept = wall.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                ctx.info(format!(
                    "slept: monotonic {} s, wall {slept} s",
                    mono.elapsed().as_secs()
                ));
            }
            "sleep_forever" => loop {
                std::thread::sleep(Duration::from_secs(1));
            },
            "far_instant" => {
                let far = wasip2::clocks::monotonic_clock::now().saturating_add(u64::MAX / 2);
                wasip2::clocks::monotonic_clock::subscribe_instant(far).block();
                ctx.info("the far instant came");
            }
            "tcp" => match wasip2::sockets::tcp_create_socket::create_tcp_socket(
                wasip2::sockets::network::IpAddressFamily::Ipv4,
            ) {
                Ok(_) => ctx.error("created a TCP socket!"),
                Err(e) => ctx.warn(format!("tcp socket refused: {e:?}")),
            },
            "udp" => match std::net::UdpSocket::bind("127.0.0.1:0") {
                Ok(_) => ctx.error("created a UDP socket!"),
                Err(e) => ctx.warn(format!("udp socket refused: {e}")),
            },
            "lookup" => {
                let net = wasip2::sockets::instance_network::instance_network();
                match wasip2::sockets::ip_name_lookup::resolve_addresses(&net, "localhost") {
                    Ok(_) => ctx.error("resolved a name!"),
                    Err(e) => ctx.warn(format!("name lookup refused: {e:?}")),
                }
            }
            "stdin" => {
                let mut input = Vec::new();
                match std::io::stdin().read_to_end(&mut input) {
                    Ok(n) => ctx.info(format!("stdin gave {n} bytes")),
                    Err(e) => ctx.warn(format!("stdin failed: {e}")),
                }
            }
            other => return Err(format!("unknown \"do\": {other}")),
        }
        Ok(())
    }
}

export_rule!(Sleeper);
