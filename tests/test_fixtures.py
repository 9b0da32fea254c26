from collections import Counter

from transformers import AutoConfig, AutoTokenizer

from adapterxl.fixtures import build_tiny_backbone, fixture_languages, nli_examples


def test_synthetic_nli_is_parallel_across_languages_and_balanced():
    en, de = nli_examples("en", 300, seed=1), nli_examples("de", 300, seed=1)
    assert [e["label"] for e in en] == [e["label"] for e in de]
    assert en[0]["premise"] != de[0]["premise"]
    counts = Counter(e["label"] for e in en)
    assert set(counts) == {0, 1, 2} and min(counts.values()) > 70
    assert len(fixture_languages()) >= 6 and fixture_languages()[0] == "en"


def test_tiny_xlmr_has_the_xlmr_architecture_and_special_tokens():
    path = build_tiny_backbone("tiny-xlmr")
    assert build_tiny_backbone("tiny-xlmr") == path  # cached, not rebuilt
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "xlm-roberta" and config.num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(path)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)
    ids = tok("the dog", "der Hund")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3  # <s> A </s></s> B </s>
    assert tok.convert_ids_to_tokens(ids)[1].startswith("▁")  # SentencePiece word marker


def test_tiny_bert_is_a_bert():
    path = build_tiny_backbone("tiny-bert")
    assert AutoConfig.from_pretrained(path).model_type == "bert"
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.convert_ids_to_tokens(tok("dog")["input_ids"]) == ["[CLS]", "dog", "[SEP]"]
