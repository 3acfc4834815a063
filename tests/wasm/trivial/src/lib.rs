//! `bench.echo`: returns its input. The per-call overhead benchmark runs this next to the
//! same logic as a native plugin.

use mediaflow_sdk::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The text to return.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// The same text.
    text: String,
}

struct Echo;

impl Plugin for Echo {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("bench.echo", "0.1.0", "Returns its input")
            .inputs(["text"])
            .outputs_from::<Output>()
    }

    fn run(config: Config) -> Result<Output, Error> {
        Ok(Output { text: config.text })
    }
}

export!(Echo);
