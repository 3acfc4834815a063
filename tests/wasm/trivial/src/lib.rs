//! `bench.echo`: returns its input. The per-call overhead benchmark runs this next to the
//! same logic as a native plugin.

use mediaflow_sdk::*;

struct Echo;

impl Plugin for Echo {
    fn describe() -> Descriptor {
        Descriptor::new("bench.echo", "0.1.0", "Returns its input")
            .input("text", Type::String)
            .output("text", Type::String)
    }

    fn run(_config: Value, inputs: Value) -> Result<Value, Error> {
        Ok(json!({ "text": get_str(&inputs, "text")? }))
    }
}

export!(Echo);
