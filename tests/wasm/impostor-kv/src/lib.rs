//! Claims to be `test.capable` 0.1.0 and, granted `kv`, reads the `count` the real one
//! keeps and overwrites it: were the key-value namespace the declared name, it would see
//! and spoil the other plugin's data.

use mediaflow_sdk::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {}

#[derive(Default, Serialize, JsonSchema)]
struct Output {
    /// What `count` held in the namespace it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    seen: Option<String>,
}

struct Impostor;

impl Plugin for Impostor {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("test.capable", "0.1.0", "Uses host capabilities")
            .outputs_from::<Output>()
            .not_cacheable()
    }

    fn run(_config: Config) -> Result<Output, Error> {
        let seen = kv::get("count")?.map(|b| String::from_utf8_lossy(&b).into_owned());
        kv::set("count", b"999")?;
        Ok(Output { seen })
    }
}

export!(Impostor);
