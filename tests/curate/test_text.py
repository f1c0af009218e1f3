from __future__ import annotations

from corpus.curate.text import count_sentences, is_spaceless_text, terminal_punctuation, tokenize, view


def test_tokens_separate_punctuation_and_keep_words_whole() -> None:
    assert tokenize("Don't stop: well-known café, 3.5!") == [
        "Don", "'t", "stop", ":", "well", "-", "known", "café", ",", "3.5", "!"]
    # Flags, paths, dotted names, abbreviations and URLs stay whole, as in spaCy (and so in FineWeb).
    assert tokenize("Run os.path.join(a) --help in /etc, e.g. https://x.org/a.html.") == [
        "Run", "os.path.join(a", ")", "--help", "in", "/etc", ",", "e.g.", "https://x.org/a.html", "."]
    assert tokenize("__init__ 2m") == ["_", "_", "init", "_", "_", "2", "m"]
    # Inline code keeps brackets and quotes inside the token; e-mail addresses and trailing slashes stay whole.
    assert tokenize("if isfile('.rc.py'): x at jo@ex.org in lib/") == [
        "if", "isfile('.rc.py", "'", ")", ":", "x", "at", "jo@ex.org", "in", "lib/"]
    # Combining marks stay inside their word (Python's \w alone would split Hindi words apart).
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]


def test_spaceless_scripts_are_split_per_character() -> None:
    assert tokenize("我们的学校 ok") == ["我", "们", "的", "学", "校", "ok"]
    assert tokenize("ภาษา") == ["ภ", "า", "ษ", "า"]
    assert is_spaceless_text("今日は天気がいいので、公園を散歩しました。")
    assert not is_spaceless_text("The weather is fine, 今日")


def test_text_view_counts() -> None:
    text = view("The cat, the dog.\n\nA #tag ...")
    assert text.words == ["The", "cat", ",", "the", "dog", ".", "A", "#", "tag", "..."]
    assert text.n_non_symbol_words == 6
    assert text.mean_word_length == (3 + 3 + 3 + 3 + 1 + 3) / 6
    assert text.alpha_words == 6
    assert text.paragraphs == ["The cat, the dog.", "A #tag ..."]
    assert view(text.text) is text  # the same document: shared


def test_sentences_and_terminal_punctuation() -> None:
    assert count_sentences("One here. Two there! Three? Version 3.5 of os.path works.") == 4
    assert count_sentences("我们去学校。然后回家。") == 2
    assert count_sentences("   ") == 0
    assert {".", "!", "?", "。", "।", "؟"} <= terminal_punctuation()
    assert "," not in terminal_punctuation()
