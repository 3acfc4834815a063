//! `test.capable`: uses one granted capability per `use:`: `llm`, `kv` (a run counter) or
//! `artifacts` (an upper-cased copy of the input file).

use mediaflow_sdk::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Which capability to use.
    #[serde(default, rename = "use")]
    capability: Option<Use>,
    /// `use: forge`: the sha256 of an artifact the step was not given.
    #[serde(default)]
    sha256: Option<String>,
    /// `use: llm`: the model.
    #[serde(default = "default_model")]
    model: String,
    /// `use: llm`: the prompt.
    #[serde(default = "default_prompt")]
    prompt: String,
    /// `use: llm`: the most tokens to generate.
    #[serde(default = "default_max_tokens")]
    max_tokens: u32,
    /// `use: llm`: send the prompt as is, without the chat template.
    #[serde(default)]
    raw: bool,
    /// `use: artifacts`: the file to upper-case.
    #[serde(default)]
    file: Option<File>,
}

fn default_model() -> String {
    "smollm2-135m-instruct".to_owned()
}

fn default_max_tokens() -> u32 {
    16
}

fn default_prompt() -> String {
    "Say hello.".to_owned()
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Use {
    Llm,
    Kv,
    Artifacts,
    Forge,
}

#[derive(Default, Serialize, JsonSchema)]
struct Output {
    /// The model's text (`llm`) or the forged artifact's (`forge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// How many runs counted so far (`kv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    /// The upper-cased copy (`artifacts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<File>,
}

struct Capable;

impl Plugin for Capable {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("test.capable", "0.1.0", "Uses host capabilities")
            .inputs(["file"])
            .outputs_from::<Output>()
            .not_cacheable()
    }

    fn run(config: Config) -> Result<Output, Error> {
        let Some(capability) = config.capability else {
            return Err(Error::bad_input("`use` must be a string"));
        };
        match capability {
            Use::Llm => {
                log::info("asking the model");
                let out = llm::generate(&json!({
                    "model": config.model,
                    "prompt": config.prompt,
                    "max_tokens": config.max_tokens,
                    "raw": config.raw,
                    "temperature": 0.0,
                }))?;
                Ok(Output {
                    text: out["text"].as_str().map(str::to_owned),
                    ..Output::default()
                })
            }
            Use::Kv => {
                let count = match kv::get("count")? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0),
                    None => 0,
                } + 1;
                kv::set("count", count.to_string().as_bytes())?;
                Ok(Output {
                    count: Some(count),
                    ..Output::default()
                })
            }
            Use::Artifacts => {
                let file = config
                    .file
                    .ok_or_else(|| Error::bad_input("`file` is required for `use: artifacts`"))?;
                let data = artifacts::read(&file)?;
                log::progress(0.5, Some("read the input"));
                let upper = String::from_utf8_lossy(&data).to_uppercase();
                let out = artifacts::write("upper.txt", "text/plain", upper.as_bytes())?;
                Ok(Output {
                    file: Some(out),
                    ..Output::default()
                })
            }
            Use::Forge => {
                // A reference made up inside the plugin, to an artifact it was not given.
                let sha256 = config
                    .sha256
                    .ok_or_else(|| Error::bad_input("`sha256` must be a string"))?;
                let forged = File {
                    sha256,
                    media_type: "text/plain".to_owned(),
                    size: 6,
                    name: None,
                };
                let data = artifacts::read(&forged)?;
                Ok(Output {
                    text: Some(String::from_utf8_lossy(&data).into_owned()),
                    ..Output::default()
                })
            }
        }
    }
}

export!(Capable);
