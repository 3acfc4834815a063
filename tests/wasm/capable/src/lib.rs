//! `test.capable`: uses one granted capability per `use:`: `llm`, `kv` (a run counter) or
//! `artifacts` (an upper-cased copy of the input file).

use mediaflow_sdk::*;

struct Capable;

impl Plugin for Capable {
    fn describe() -> Descriptor {
        Descriptor::new("test.capable", "0.1.0", "Uses host capabilities")
            .option("use", json!({"enum": ["llm", "kv", "artifacts", "forge"]}))
            .option("sha256", json!({"type": "string"}))
            .option("model", json!({"type": "string"}))
            .option("prompt", json!({"type": "string"}))
            .optional_input("file", Type::File)
            .output("text", Type::String)
            .output("count", Type::Integer)
            .output("file", Type::File)
            .not_cacheable()
    }

    fn run(config: Value, inputs: Value) -> Result<Value, Error> {
        match get_str(&config, "use")? {
            "llm" => {
                log::info("asking the model");
                let out = llm::generate(&json!({
                    "model": get_str_or(&config, "model", "smollm2-135m-instruct"),
                    "prompt": get_str_or(&config, "prompt", "Say hello."),
                    "max_tokens": 16,
                    "temperature": 0.0,
                }))?;
                Ok(json!({ "text": out["text"] }))
            }
            "kv" => {
                let count = match kv::get("count")? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0),
                    None => 0,
                } + 1;
                kv::set("count", count.to_string().as_bytes())?;
                Ok(json!({ "count": count }))
            }
            "artifacts" => {
                let file = inputs
                    .get("file")
                    .ok_or_else(|| Error::bad_input("`file` is required for `use: artifacts`"))?;
                let data = artifacts::read(file)?;
                log::progress(0.5, Some("read the input"));
                let upper = String::from_utf8_lossy(&data).to_uppercase();
                let out = artifacts::write("upper.txt", "text/plain", upper.as_bytes())?;
                Ok(json!({ "file": out }))
            }
            "forge" => {
                // A reference made up inside the plugin, to an artifact it was not given.
                let forged = json!({"sha256": get_str(&config, "sha256")?, "media_type": "text/plain", "size": 6});
                let data = artifacts::read(&forged)?;
                Ok(json!({ "text": String::from_utf8_lossy(&data) }))
            }
            other => Err(Error::bad_input(format!("unknown use `{other}`"))),
        }
    }
}

export!(Capable);
