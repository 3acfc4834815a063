//! `ground_in` on real news copy: the names and numbers a headline and summary write must be
//! in the story, and `ungrounded` tells the truth about anything that is not.

mod common;

use common::{
    headline_flow, invented, llm_harness, models_dir, news_stories, require, words, DEFAULT_MODEL,
};
use mediaflow_store::RunStatus;
use serde_json::json;

#[test]
fn the_checks_see_invented_names_and_numbers() {
    let story = "Kevin Rudd said 4,000 people left Hill Top.";
    assert_eq!(
        invented(
            story,
            "Rudd's office said 4000 left Hill Top. Kevin met Vladimir Putin in 2009."
        ),
        ["Vladimir", "Putin", "2009"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grounded_headlines_and_summaries_name_only_what_the_story_holds() {
    let Some(stories) = news_stories(20) else {
        return;
    };
    require(DEFAULT_MODEL);
    let (h, sup) = llm_harness(&models_dir()).await;
    let flow = headline_flow(DEFAULT_MODEL, true);
    let r = h.run(&flow, json!({ "stories": stories })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let outputs = r.steps["write"].outputs.as_array().unwrap();
    let mut entities = 0;
    for (story, o) in stories.iter().zip(outputs) {
        let json = &o["json"];
        eprintln!("{json} ungrounded: {}", o["ungrounded"]);
        for field in ["headline", "summary"] {
            let text = json[field].as_str().unwrap();
            // Nothing the decoder could mask got through.
            assert_eq!(
                invented(story, text),
                Vec::<String>::new(),
                "{field}: {text}\nstory: {story}"
            );
            entities += words(text)
                .iter()
                .filter(|(w, opens)| {
                    w.starts_with(|c: char| c.is_ascii_digit())
                        || (!opens && w.starts_with(char::is_uppercase))
                })
                .count();
        }
        // Whatever `ungrounded` lists is true: it is not in the story, and it is a
        // quotation (names and numbers are masked while decoding).
        let flat = story.to_lowercase();
        for u in o["ungrounded"].as_array().unwrap() {
            let u = u.as_str().unwrap();
            assert!(!flat.contains(&u.to_lowercase()), "{u:?} is in the story");
            let quoted = [format!("\"{u}\""), format!("“{u}”")];
            let written = format!("{} {}", json["headline"], json["summary"]).replace("\\\"", "\"");
            assert!(
                quoted.iter().any(|q| written.contains(q.as_str())),
                "{u:?} is not a quotation: {o}"
            );
        }
    }
    // The outputs do name things: grounding shaped them rather than emptying them.
    assert!(
        entities >= 20,
        "only {entities} names and numbers in 20 outputs"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

/// With an empty source nothing can be named: the answer has no numbers and no capitalised
/// word but a sentence's first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_source_refuses_names_and_numbers() {
    require(DEFAULT_MODEL);
    let (h, sup) = llm_harness(&models_dir()).await;
    let flow = format!(
        r#"
steps:
  answer:
    uses: llm.generate
    with:
      model: {DEFAULT_MODEL}
      prompt: "Who was the first president of the United States, and in which year did he take office? Answer in two sentences."
      temperature: 0
      max_tokens: 60
      ground_in: ""
"#
    );
    let r = h.run(&flow, json!({})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let o = &r.steps["answer"].outputs;
    let text = o["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{o}");
    assert_eq!(invented("", text), Vec::<String>::new(), "{text}");
    assert_eq!(o["ungrounded"], json!([]), "{o}");
    // The same prompt without grounding names him: the masks did the work.
    let free = r#"
steps:
  answer:
    uses: llm.generate
    with:
      model: MODEL
      prompt: "Who was the first president of the United States, and in which year did he take office? Answer in two sentences."
      temperature: 0
      max_tokens: 60
"#
    .replace("MODEL", DEFAULT_MODEL);
    let r = h.run(&free, json!({})).await;
    let text = r.steps["answer"].outputs["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!invented("", &text).is_empty(), "{text}");
    sup.shutdown().await;
    h.cleanup().await;
}
