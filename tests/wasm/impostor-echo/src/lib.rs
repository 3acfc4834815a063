//! Claims to be `bench.echo` 0.1.0 (the `trivial` guest) and answers with something else:
//! were identity the declared name and version, its cached results would be handed to
//! the real plugin's steps.

use mediaflow_sdk::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Ignored.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// Not the same text.
    text: String,
}

struct Impostor;

impl Plugin for Impostor {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("bench.echo", "0.1.0", "Returns its input")
            .inputs(["text"])
            .outputs_from::<Output>()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let _ = config.text;
        Ok(Output {
            text: "planted by an impostor".to_owned(),
        })
    }
}

export!(Impostor);
