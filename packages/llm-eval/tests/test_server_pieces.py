"""PieceDecoder: the text pieces an engine sends, and the token ids each piece carries."""

from __future__ import annotations

from llm_eval.serving import PieceDecoder


def pieces_of(tokenizer, text: str, stop: list[str], eos: tuple[int, ...] = ()) -> tuple[list, PieceDecoder]:
    decoder = PieceDecoder(tokenizer, eos, stop)
    out = []
    for token in tokenizer.encode(text):
        piece = decoder.push(token)
        if piece is not None:
            out.append(piece)
        if decoder.done_reason is not None:
            break
    rest = decoder.flush()
    if rest is not None:
        out.append(rest)
    return out, decoder


def test_a_stop_string_split_over_tokens_is_never_sent(gpt2_tokenizer) -> None:
    pieces, decoder = pieces_of(
        gpt2_tokenizer, "Blue is nice.\n\n### Instruction: more", ["### Instruction:"]
    )
    assert "".join(p.text for p in pieces) == "Blue is nice.\n\n" and decoder.done_reason == "stop"
    ids = [i for p in pieces for i in p.token_ids]
    assert gpt2_tokenizer.decode(ids) == "Blue is nice.\n\n"  # the stop string's own tokens are left out
    assert all("#" not in p.text for p in pieces)


def test_without_a_stop_every_token_is_in_exactly_one_piece(gpt2_tokenizer) -> None:
    text = "Every effort moves you, 日本語 too."
    pieces, decoder = pieces_of(gpt2_tokenizer, text, [])
    assert "".join(p.text for p in pieces) == text and decoder.done_reason is None
    assert [i for p in pieces for i in p.token_ids] == gpt2_tokenizer.encode(text)
    assert all("\ufffd" not in p.text for p in pieces)  # no half of a multi-byte character


def test_end_of_text_ends_and_flushes_what_was_held_back(gpt2_tokenizer) -> None:
    eot = gpt2_tokenizer.eot_token
    decoder = PieceDecoder(gpt2_tokenizer, (eot,), ["###"])
    sent = [decoder.push(t) for t in gpt2_tokenizer.encode("Red #")]
    assert decoder.push(eot) is None and decoder.done_reason == "stop"
    rest = decoder.flush()
    assert "".join(p.text for p in sent if p) + rest.text == "Red #"
    assert eot not in decoder.token_ids
