#!/usr/bin/env bash
# The main job: builds mediaflow and its plugin processes (llama.cpp, whisper.cpp), pulls
# the models if they are missing, and runs a real example workflow on the embedded default
# store (SQLite in the data dir): by default workflows/podcast-to-article.yaml on a spoken
# news bulletin (espeak-ng) unless `--input audio=FILE` is given. Installs whatever is
# missing first.
#   ./scripts/run-example.sh [workflow.yaml] [mediaflow run options…]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

workflow=${1:-workflows/podcast-to-article.yaml}
shift || true
cargo build --release -p mediaflow-cli -p mediaflow-llm -p mediaflow-asr -p mediaflow-onnx
bin="${CARGO_TARGET_DIR:-target}/release/mediaflow"
"$bin" models pull smollm2-135m-instruct
"$bin" models pull qwen2.5-coder-0.5b-instruct
args=("$@")
case $(basename "$workflow") in
  image-moderation.yaml)
    "$bin" models pull open-nsfw
    "$bin" models pull efficientnet-lite0
    if ! printf '%s\n' "$@" | grep -q '^images='; then
      photos=$(scripts/sample-images.sh)
      echo "no --input images=@DIR given: using sample photos from $photos"
      args+=(--input "images=@$photos")
    fi ;;
  comment-sentiment.yaml)
    "$bin" models pull minilm-l6 ;;
  news-archive.yaml)
    "$bin" models pull minilm-l6
    if ! printf '%s\n' "$@" | grep -q '^stories='; then
      stories="${TMPDIR:-/tmp}/mediaflow-example/stories"
      if [ ! -d "$stories" ]; then
        mkdir -p "$stories"
        # The shared data's 293 ABC news stories (one a line) if they are beside the
        # repository, else three short ones.
        news=../shared/data/news/abc_news_293.txt
        if [ -f "$news" ]; then
          awk -v dir="$stories" '{ f = sprintf("%s/abc-%03d.txt", dir, NR); print > f; close(f) }' "$news"
        else
          echo "Fire crews fought a bushfire that threatened homes on the edge of town overnight." > "$stories/fire.txt"
          echo "The Reserve Bank left interest rates on hold as the dollar fell against the greenback." > "$stories/rates.txt"
          echo "Australia won the second Test by six wickets after a century from the captain." > "$stories/cricket.txt"
        fi
      fi
      echo "no --input stories=@DIR given: using $(ls "$stories" | wc -l) stories from $stories"
      args+=(--input "stories=@$stories")
    fi ;;
esac
if [[ $(basename "$workflow") == podcast-to-article.yaml ]]; then
  "$bin" models pull whisper-base-q8_0
  if ! printf '%s\n' "$@" | grep -q '^audio='; then
    sample="${TMPDIR:-/tmp}/mediaflow-example/bulletin.mp3"
    if [ ! -s "$sample" ]; then
      mkdir -p "$(dirname "$sample")"
      espeak-ng -v en-us -s 150 -w "${sample%.mp3}.wav" \
        "Good evening. Here is the news. The city council approved a new bridge across the \
river on Tuesday night, ending years of debate over the crossing. Opponents said the money \
should have been spent on flood protection after the storms of last winter, but the council \
said the bridge would take thousands of cars a day off the inner ring road. Work is expected \
to start in the autumn. In other news, train drivers will strike on Friday after talks over \
pay broke down, the union said. Passengers are advised to check before they travel."
      lame --quiet -b 64 "${sample%.mp3}.wav" "$sample"
    fi
    echo "no --input audio=FILE given: using a spoken news bulletin, $sample"
    args+=(--input "audio=$sample")
  fi
fi
"$bin" validate "$workflow"
"$bin" run "$workflow" "${args[@]}"
