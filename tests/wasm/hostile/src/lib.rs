//! `test.hostile`: a plugin that attacks its sandbox, one way per `attack:`.
//! Where the attack is refused it fails with code `denied` and the error it got, so tests
//! can see that the host, not the plugin, refused.

use mediaflow_sdk::*;

struct Hostile;

fn denied(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new("denied", format!("{what}: {e}"))
}

impl Plugin for Hostile {
    fn describe() -> Descriptor {
        Descriptor::new("test.hostile", "0.1.0", "Attacks the sandbox")
            .option(
                "attack",
                json!({"enum": ["loop", "memory", "passwd", "env", "network", "panic", "clock", "stdout"]}),
            )
            .not_cacheable()
    }

    fn run(config: Value, _inputs: Value) -> Result<Value, Error> {
        match get_str(&config, "attack")? {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 8 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "passwd" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(json!({ "leaked": text })),
                Err(e) => Err(denied("reading /etc/passwd", e)),
            },
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                match std::env::var("HOME") {
                    Ok(home) => Ok(json!({ "leaked": home, "vars": vars.len() })),
                    Err(e) if vars.is_empty() => Err(denied(
                        "reading the environment",
                        format!("{e}; no variables visible"),
                    )),
                    Err(_) => Ok(json!({ "leaked": vars.len() })),
                }
            }
            "network" => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => Ok(json!({ "leaked": "connected to 127.0.0.1:5432" })),
                Err(e) => Err(denied("connecting to 127.0.0.1:5432", e)),
            },
            "panic" => panic!("hostile plugin panicked on purpose"),
            "clock" => {
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(json!({ "unix_seconds": since }))
            }
            "stdout" => {
                println!("hello from stdout");
                eprintln!("and from stderr");
                Ok(json!({}))
            }
            other => Err(Error::bad_input(format!("unknown attack `{other}`"))),
        }
    }
}

export!(Hostile);
