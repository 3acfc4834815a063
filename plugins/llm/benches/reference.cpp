// llama.cpp's own generation loop, for comparison with `llm.generate`: the plain C API of
// the llama.cpp sources that llama-cpp-sys-2 vendors, linked against the very static
// libraries it built. Greedy, `n_gen` tokens after a prompt; prints tokens/s as JSON.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "llama.h"

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_GEN THREADS\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    std::string prompt = argv[2];
    int n_gen = atoi(argv[3]);
    int threads = atoi(argv[4]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model *model = llama_model_load_from_file(path, llama_model_default_params());
    if (!model) return 1;
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::vector<llama_token> tokens(prompt.size() + 8);
    int n = llama_tokenize(vocab, prompt.c_str(), prompt.size(), tokens.data(), tokens.size(), true, true);
    tokens.resize(n);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n + n_gen + 8;
    cp.n_batch = n < 64 ? 64 : n;
    cp.n_ubatch = cp.n_batch;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context *ctx = llama_init_from_model(model, cp);
    llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    auto t0 = std::chrono::steady_clock::now();
    if (llama_decode(ctx, llama_batch_get_one(tokens.data(), n))) return 1;
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_gen; i++) {
        llama_token t = llama_sampler_sample(smpl, ctx, -1);
        if (llama_decode(ctx, llama_batch_get_one(&t, 1))) return 1;
    }
    auto t2 = std::chrono::steady_clock::now();
    double pp = std::chrono::duration<double>(t1 - t0).count();
    double tg = std::chrono::duration<double>(t2 - t1).count();
    printf("{\"prompt_tokens\": %d, \"pp_tps\": %f, \"tg_tps\": %f}\n", n, n / pp, n_gen / tg);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
