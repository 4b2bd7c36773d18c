"""The lm-evaluation-harness adapter: its three request types against direct computations, then lm-eval.

The first tests need no lm-eval. The last ones run lm-eval's own evaluator
(``simple_evaluate`` and its command line) on local YAML tasks over a JSON
file written here, offline, and check each metric against a direct computation
with the model; they are skipped when lm-eval is not installed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from llm_core.errors import ConfigError, MissingDependencyError
from llm_eval.harness import CheckpointScorer, harness_lm_class, main, register_harness_model
from llm_eval.perplexity import rolling_windows, strided_perplexity, strided_windows
from llm_model import generate_text, load_pretrained


@pytest.fixture(scope="module")
def scorer(gpt2_checkpoint, gpt2_tokenizer) -> CheckpointScorer:
    return CheckpointScorer(load_pretrained(gpt2_checkpoint), gpt2_tokenizer, batch_size=3)


def direct_loglikelihood(model, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """Sum of log p(cont[i] | ctx + cont[:i]) from one forward pass of the whole sequence."""
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ctx + cont[:-1]]))[0], dim=-1)
    rows = logprobs[len(ctx) - 1 :]
    total = sum(float(rows[i, t]) for i, t in enumerate(cont))
    return total, all(int(rows[i].argmax()) == t for i, t in enumerate(cont))


def test_loglikelihood_matches_direct_sum(scorer, gpt2_tokenizer) -> None:
    enc = gpt2_tokenizer.encode
    expected = direct_loglikelihood(scorer.model, enc("The sky is"), enc(" blue today"))
    total, greedy = scorer.loglikelihood("The sky is ", "blue today")  # the trailing space moves over
    assert total == pytest.approx(expected[0], rel=1e-5) and greedy is expected[1] is False
    with torch.no_grad():
        best = int(scorer.model(torch.tensor([enc("The sky is")]))[0, -1].argmax())
    assert scorer.loglikelihood("The sky is", gpt2_tokenizer.decode([best]))[1] is True
    empty = direct_loglikelihood(scorer.model, [gpt2_tokenizer.eot_token], enc("Hello"))
    assert scorer.loglikelihood("", "Hello")[0] == pytest.approx(empty[0], rel=1e-5)
    assert scorer.loglikelihood("Hello", "") == (0.0, True)


def test_batched_loglikelihoods_equal_one_at_a_time(scorer, gpt2_tokenizer) -> None:
    long_context = "one two three " * 120  # more than the 256-token context: the last 257 tokens are kept
    pairs = [("A", " b"), ("The cat sat on the", " mat and slept"), (long_context, " four"), ("x\n", "y z")]
    batched = scorer.loglikelihoods(pairs)
    for (context, continuation), (total, greedy) in zip(pairs, batched, strict=True):
        ctx_ids, cont_ids = scorer.encode_pair(context, continuation)
        whole = (ctx_ids + cont_ids)[-257:]
        expected = direct_loglikelihood(scorer.model, whole[: -len(cont_ids)], cont_ids)
        assert total == pytest.approx(expected[0], rel=1e-4) and greedy == expected[1]


def test_encode_pair_is_lm_evals(scorer, gpt2_tokenizer) -> None:
    """The same token split as lm-eval's own TemplateLM (the base of its HF model)."""
    model_api = pytest.importorskip("lm_eval.api.model", reason="lm-eval not installed (llm-eval[harness])")

    class Reference(model_api.TemplateLM):
        eot_token_id = gpt2_tokenizer.eot_token

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return list(gpt2_tokenizer.encode(string))

        _loglikelihood_tokens = loglikelihood_rolling = generate_until = None

    reference = Reference()
    for context, continuation in [
        ("The sky is ", "blue"),
        ("a\n\n", "b"),
        ("Question: 2+2=", " 4"),
        ("x", ""),
    ]:
        assert scorer.encode_pair(context, continuation) == reference._encode_pair(context, continuation)


@pytest.mark.parametrize(("n", "ctx"), [(2, 4), (5, 4), (9, 4), (10, 4), (11, 4), (300, 32), (33, 32)])
def test_rolling_windows_predict_each_token_once_with_full_context(n: int, ctx: int) -> None:
    windows = rolling_windows(n, ctx)
    counted = [t for _, end, n_new in windows for t in range(end - n_new + 1, end + 1)]
    assert counted == list(range(1, n))
    assert all(end - begin == min(ctx, end) for begin, end, _ in windows)  # full context once it exists
    if (n - 1) % ctx == 0:  # blocks that tile the text: the same as disjoint strided windows
        assert windows == strided_windows(n, ctx, ctx)


def test_rolling_windows_are_lm_evals() -> None:
    utils = pytest.importorskip("lm_eval.utils", reason="lm-eval not installed (llm-eval[harness])")
    for n, ctx in [(2, 4), (5, 4), (9, 4), (10, 4), (11, 4), (70, 8), (33, 32)]:
        tokens = list(range(100, 100 + n))  # tokens[0] plays the prefix token
        pairs = utils.get_rolling_token_windows(tokens[1:], tokens[0], ctx, 1)
        theirs = [utils.make_disjoint_window(p) for p in pairs]
        ours = [
            (tokens[b:e][: e - b - n_new + 1], tokens[e - n_new + 1 : e + 1])
            for b, e, n_new in rolling_windows(n, ctx)
        ]
        assert ours == [tuple(p) for p in theirs]


def test_rolling_loglikelihood_is_our_perplexity_evaluator(scorer, gpt2_tokenizer) -> None:
    """-loglikelihood_rolling = total NLL of the perplexity evaluator (disjoint windows) on eot + text."""
    for text, repeat in [("a b c d e f g", 1), ("every effort moves you ", 51)]:
        ids = [gpt2_tokenizer.eot_token, *gpt2_tokenizer.encode(text * repeat)]
        if repeat > 1:
            ids = ids[: 2 * 256 + 1]  # two full blocks: the rolling and disjoint windows coincide
        report = strided_perplexity(scorer.model, ids, stride=256)
        expected = -report["loss"] * report["predicted_tokens"]
        decoded = gpt2_tokenizer.decode(ids[1:])
        assert gpt2_tokenizer.encode(decoded) == ids[1:]
        got = scorer.loglikelihood_rolling(decoded)
        assert got == pytest.approx(expected, rel=1e-5)
    assert scorer.loglikelihood_rolling("") == 0.0


def test_rolling_loglikelihood_gives_the_last_block_full_context(scorer, gpt2_tokenizer) -> None:
    text = "one two three four five six seven " * 60
    ids = [gpt2_tokenizer.eot_token, *gpt2_tokenizer.encode(text)]
    assert (len(ids) - 1) % 256 != 0
    expected = 0.0
    for begin, end, n_new in rolling_windows(len(ids), 256):
        with torch.no_grad():
            logprobs = torch.log_softmax(scorer.model(torch.tensor([ids[begin:end]]))[0], dim=-1)
        expected += sum(float(logprobs[j - begin - 1, ids[j]]) for j in range(end - n_new + 1, end + 1))
        assert end - begin == min(end, 256)
    assert scorer.loglikelihood_rolling(text) == pytest.approx(expected, rel=1e-5)


def test_generate_until_is_greedy_and_stops(scorer, gpt2_tokenizer) -> None:
    full = generate_text(scorer.model, gpt2_tokenizer, "Hello", 8)
    assert scorer.generate_until("Hello", {"until": [], "max_gen_toks": 8}) == full
    stop = full[2:4]
    assert stop.strip()
    cut = scorer.generate_until("Hello", {"until": [stop], "max_gen_toks": 8})
    assert cut == full[: full.index(stop)]
    assert scorer.generate_until("Hello", {"until": stop, "max_gen_toks": 8, "do_sample": False}) == cut
    with pytest.raises(ConfigError, match="max_gen_toks: expected a positive integer"):
        scorer.generate_until("Hello", {"max_gen_toks": 0})


def test_generate_until_keeps_room_for_the_answer(scorer, gpt2_tokenizer) -> None:
    ids = gpt2_tokenizer.encode("one two three " * 120)  # > 256 tokens
    kept = gpt2_tokenizer.decode(ids[-(256 - 5) :])
    assert scorer.generate_until(gpt2_tokenizer.decode(ids), {"max_gen_toks": 5}) == generate_text(
        scorer.model, gpt2_tokenizer, kept, 5
    )


def test_missing_lm_eval_names_the_extra(monkeypatch) -> None:
    import llm_eval.harness as harness

    monkeypatch.setattr(harness, "_LM_CLASS", None)
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    monkeypatch.setitem(sys.modules, "lm_eval.api", None)
    monkeypatch.setitem(sys.modules, "lm_eval.api.model", None)
    with pytest.raises(MissingDependencyError, match=r"llm-eval\[harness\]"):
        harness_lm_class()


# ---- with lm-eval installed ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_eval_offline():
    """lm-eval, imported with the Hugging Face hub and datasets switched offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        lm_eval = pytest.importorskip("lm_eval", reason="lm-eval not installed (llm-eval[harness])")
        import datasets.config

        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
        yield lm_eval


def test_registered_model_takes_lm_eval_arguments(lm_eval_offline, gpt2_checkpoint) -> None:
    from lm_eval.api.registry import get_model

    cls = register_harness_model()
    assert get_model("scratchlm") is cls and get_model("dummy") is not None  # lm-eval's own models kept
    lm = cls.create_from_arg_string(f"checkpoint={gpt2_checkpoint},max_gen_toks=4", {"batch_size": "auto"})
    assert lm.scorer.batch_size == 8 and lm.scorer.max_gen_toks == 4
    with pytest.raises(ConfigError, match=r"unknown argument.*tokeniser"):
        cls.create_from_arg_string(f"checkpoint={gpt2_checkpoint},tokeniser=gpt2")
    with pytest.raises(ConfigError, match="expected checkpoint=DIR"):
        cls.create_from_arg_string("")


def write_tasks(root: Path, scorer: CheckpointScorer, tok) -> dict:
    """Three local tasks over one JSONL file, and the metric values a direct computation predicts."""
    questions = ["The sky is", "Grass is", "Snow is", "The sea is"]
    choices = ["blue", "green", "white"]  # lm-eval puts its target delimiter, a space, before each
    texts = [
        "Every effort moves you.",
        "I had always thought Jack Gisburn rather a cheap genius",
        "a b c",
        "x",
    ]
    docs, right, rolling = [], 0, 0.0
    for i, question in enumerate(questions):
        scores = [
            direct_loglikelihood(scorer.model, tok.encode(question), tok.encode(" " + c))[0] for c in choices
        ]
        best = max(range(len(choices)), key=scores.__getitem__)
        answer = best if i % 2 == 0 else (best + 1) % len(choices)  # half the answers are the model's
        right += answer == best
        answer_text = generate_text(scorer.model, tok, question, 5, stop_strings=["\n"])
        target = answer_text if i < 3 else "no such answer"
        ids = [tok.eot_token, *tok.encode(texts[i])]
        report = strided_perplexity(scorer.model, ids, stride=256)
        rolling += report["loss"] * report["predicted_tokens"]
        docs.append(
            {"question": question, "choices": choices, "answer": answer, "text": texts[i], "target": target}
        )
    data = root / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    common = (
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        f"  cache_dir: {root / 'cache'}\ntest_split: test\n"
    )
    (root / "mc.yaml").write_text(
        "task: scratch_mc\n" + common + "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    (root / "rolling.yaml").write_text(
        "task: scratch_rolling\n" + common + "output_type: loglikelihood_rolling\n"
        'doc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: word_perplexity\n  - metric: bits_per_byte\n"
    )
    (root / "gen.yaml").write_text(
        "task: scratch_gen\n" + common + "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\ndoc_to_target: "{{target}}"\n'
        'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 5\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    n_bytes = sum(len(t.encode()) for t in texts)
    n_words = sum(len(re.split(r"\s+", t)) for t in texts)
    return {
        "acc": right / len(questions),
        "exact_match": 3 / 4,
        "bits_per_byte": rolling / n_bytes / math.log(2),
        "word_perplexity": math.exp(rolling / n_words),
    }


def test_lm_eval_simple_evaluate_on_local_tasks(
    lm_eval_offline, gpt2_checkpoint, scorer, gpt2_tokenizer, tmp_path
):
    from lm_eval.tasks import TaskManager

    expected = write_tasks(tmp_path, scorer, gpt2_tokenizer)
    register_harness_model()
    results = lm_eval_offline.simple_evaluate(
        model="scratchlm",
        model_args=f"checkpoint={gpt2_checkpoint}",
        tasks=["scratch_mc", "scratch_rolling", "scratch_gen"],
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
        batch_size=2,
        bootstrap_iters=0,
    )["results"]
    assert expected["acc"] == 0.5  # the data has two right and two wrong answers by construction
    assert results["scratch_mc"]["acc,none"] == expected["acc"]
    assert results["scratch_gen"]["exact_match,none"] == expected["exact_match"]
    assert results["scratch_rolling"]["bits_per_byte,none"] == pytest.approx(
        expected["bits_per_byte"], rel=1e-4
    )
    assert results["scratch_rolling"]["word_perplexity,none"] == pytest.approx(
        expected["word_perplexity"], rel=1e-4
    )


def test_python_m_llm_eval_harness_is_lm_evals_cli_with_scratchlm(lm_eval_offline, monkeypatch) -> None:
    """``main`` registers the model, then hands its arguments to lm-eval's own command line."""
    import lm_eval.__main__
    from lm_eval.api.registry import get_model

    seen = []
    monkeypatch.setattr(
        lm_eval.__main__, "cli_evaluate", lambda: seen.append((list(sys.argv), get_model("scratchlm")))
    )
    monkeypatch.setattr(sys, "argv", ["python"])
    main(["run", "--model", "scratchlm", "--tasks", "x"])
    assert seen == [(["lm-eval", "run", "--model", "scratchlm", "--tasks", "x"], harness_lm_class())]
