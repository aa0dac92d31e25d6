// Greedy decoding with llama.cpp's own library, reporting the raw logits' top-2 gap at every step.
//
// Built by make-reference.sh against the static libraries of the peer build
// (/work/shared/peers/llama-cpp.sh); used by reference_greedy.py and tiny_crosscheck.py.
// llama-server cannot give this reliably: it drops the probabilities of tokens that end inside
// a UTF-8 character (byte tokens of Chinese text), so we call the library directly.
//
//   llama_greedy MODEL THREADS N_PREDICT [--full] [--q8-cache] [--no-repack] < prompts
//
// stdin: one prompt per line, token ids separated by spaces. stdout: one JSON object per prompt:
//   {"tokens": [generated ids; the end-of-generation token included as the last one],
//    "gaps": [logit(top1) - logit(top2) per generated token], "eog": true|false,
//    "logits": [raw logits after the prompt, whole vocabulary]   (only with --full)}
// The prompt is decoded in one batch (n_batch 2048, n_ubatch 512, as llama-server's defaults),
// then one token per llama_decode call; the context is 4096 tokens; the KV cache is cleared
// between prompts. Greedy is the argmax of the raw logits (lowest id on ties).
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL THREADS N_PREDICT [--full] [--q8-cache] [--no-repack] < prompts\n", argv[0]);
        return 2;
    }
    const char * model_path = argv[1];
    const int threads = atoi(argv[2]);
    const int n_predict = atoi(argv[3]);
    bool full = false;
    bool q8_cache = false;  // K and V cache in Q8_0 (llama-cli -ctk q8_0 -ctv q8_0 -fa on)
    // No repacked weight buffers (llama-cli --no-repack): ggml's AMX path segfaults on prompts of
    // two or more tokens on some Xeons (ggml-org/llama.cpp#20824).
    bool no_repack = false;
    for (int i = 4; i < argc; i++) {
        full = full || strcmp(argv[i], "--full") == 0;
        q8_cache = q8_cache || strcmp(argv[i], "--q8-cache") == 0;
        no_repack = no_repack || strcmp(argv[i], "--no-repack") == 0;
    }

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    mparams.use_extra_bufts = !no_repack;
    llama_model * model = llama_model_load_from_file(model_path, mparams);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", model_path);
        return 1;
    }
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 4096;
    cparams.n_batch = 2048;
    cparams.n_ubatch = 512;
    cparams.n_seq_max = 1;
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.no_perf = true;
    if (q8_cache) {
        // A quantized V cache needs flash attention in llama.cpp.
        cparams.type_k = GGML_TYPE_Q8_0;
        cparams.type_v = GGML_TYPE_Q8_0;
        cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    std::string line;
    while (std::getline(std::cin, line)) {
        std::vector<llama_token> prompt;
        std::istringstream in(line);
        long id;
        while (in >> id) {
            prompt.push_back((llama_token) id);
        }
        if (prompt.empty()) {
            continue;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), (int32_t) prompt.size())) != 0) {
            fprintf(stderr, "llama_decode failed on the prompt\n");
            return 1;
        }
        std::ostringstream out;
        out.precision(9);
        std::vector<llama_token> tokens;
        std::vector<double> gaps;
        bool eog = false;
        std::string logits_json;
        for (int step = 0; step < n_predict || (full && step == 0); step++) {
            const float * logits = llama_get_logits_ith(ctx, -1);
            if (full && step == 0) {
                std::ostringstream l;
                l.precision(9);
                for (int i = 0; i < n_vocab; i++) {
                    l << (i ? "," : "") << logits[i];
                }
                logits_json = l.str();
                if (n_predict == 0) {
                    break;
                }
            }
            int best = 0, second = -1;
            for (int i = 1; i < n_vocab; i++) {
                if (logits[i] > logits[best]) {
                    second = best;
                    best = i;
                } else if (second < 0 || logits[i] > logits[second]) {
                    second = i;
                }
            }
            tokens.push_back(best);
            gaps.push_back((double) logits[best] - (double) logits[second]);
            if (llama_vocab_is_eog(vocab, best)) {
                eog = true;
                break;
            }
            if (step + 1 >= n_predict) {
                break;
            }
            llama_token next = best;
            if (llama_decode(ctx, llama_batch_get_one(&next, 1)) != 0) {
                fprintf(stderr, "llama_decode failed at step %d\n", step);
                return 1;
            }
        }
        out << "{\"tokens\":[";
        for (size_t i = 0; i < tokens.size(); i++) {
            out << (i ? "," : "") << tokens[i];
        }
        out << "],\"gaps\":[";
        for (size_t i = 0; i < gaps.size(); i++) {
            out << (i ? "," : "") << gaps[i];
        }
        out << "],\"eog\":" << (eog ? "true" : "false");
        if (full) {
            out << ",\"logits\":[" << logits_json << "]";
        }
        out << "}\n";
        std::cout << out.str() << std::flush;
    }
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
