//! `test.hostile`: a plugin that attacks its sandbox, one way per `attack:`.
//! Where the attack is refused it fails with code `denied` and the error it got, so tests
//! can see that the host, not the plugin, refused.

use mediaflow_sdk::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// How to attack the sandbox.
    #[serde(default)]
    attack: Option<Attack>,
    /// `attack: sleep`: how long, in milliseconds (default an hour).
    #[serde(default)]
    ms: Option<u64>,
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Attack {
    Loop,
    Sleep,
    Memory,
    Passwd,
    Env,
    Network,
    Panic,
    Clock,
    Stdout,
    Exit,
    LogFlood,
    KvFlood,
    ArtifactFlood,
}

/// What a successful attack got out (none should).
#[derive(Default, Serialize, JsonSchema)]
struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    leaked: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vars: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unix_seconds: Option<u64>,
}

fn leaked(what: impl Into<Value>) -> Output {
    Output {
        leaked: Some(what.into()),
        ..Output::default()
    }
}

struct Hostile;

fn denied(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new("denied", format!("{what}: {e}"))
}

/// An I/O error the plugin got, with its kind, so tests can tell the host's refusal
/// (`PermissionDenied`) from an operation the guest cannot even attempt (`Unsupported`).
fn refused(what: &str, e: std::io::Error) -> Error {
    Error::new("denied", format!("{what}: {e} [kind: {:?}]", e.kind()))
}

impl Plugin for Hostile {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("test.hostile", "0.1.0", "Attacks the sandbox")
            .outputs_from::<Output>()
            .not_cacheable()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let Some(attack) = config.attack else {
            return Err(Error::bad_input("`attack` must be a string"));
        };
        match attack {
            Attack::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Attack::Sleep => {
                // Blocks in a WASI call (a monotonic-clock pollable), not in wasm code.
                let ms = config.ms.unwrap_or(3_600_000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Output::default())
            }
            Attack::Memory => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 8 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Attack::Passwd => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(leaked(text)),
                Err(e) => Err(refused("reading /etc/passwd", e)),
            },
            Attack::Env => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                match std::env::var("HOME") {
                    Ok(home) => Ok(Output {
                        vars: Some(vars.len()),
                        ..leaked(home)
                    }),
                    Err(e) if vars.is_empty() => Err(denied(
                        "reading the environment",
                        format!("{e}; no variables visible"),
                    )),
                    Err(_) => Ok(leaked(vars.len())),
                }
            }
            Attack::Network => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => Ok(leaked("connected to 127.0.0.1:5432")),
                Err(e) => Err(refused("connecting to 127.0.0.1:5432", e)),
            },
            Attack::Panic => panic!("hostile plugin panicked on purpose"),
            Attack::Exit => std::process::exit(3),
            Attack::LogFlood => loop {
                log::info("flooding the log");
            },
            Attack::KvFlood => {
                let value = vec![7u8; 1 << 20];
                for i in 0.. {
                    if let Err(e) = kv::set(&format!("k{i}"), &value) {
                        return Err(e);
                    }
                }
                Ok(Output::default())
            }
            Attack::ArtifactFlood => {
                let chunk = vec![7u8; 8 << 20];
                for i in 0.. {
                    if let Err(e) = artifacts::write(&format!("a{i}"), "application/octet-stream", &chunk) {
                        return Err(e);
                    }
                }
                Ok(Output::default())
            }
            Attack::Clock => {
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(Output {
                    unix_seconds: Some(since),
                    ..Output::default()
                })
            }
            Attack::Stdout => {
                println!("hello from stdout");
                eprintln!("and from stderr");
                Ok(Output::default())
            }
        }
    }
}

export!(Hostile);
