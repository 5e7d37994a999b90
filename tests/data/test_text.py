"""reference_sentences: real prose that ships with CPython."""

import pytest

from anywidth.data.text import reference_sentences


def test_there_are_over_a_thousand_distinct_prose_sentences():
    sentences = reference_sentences()
    assert len(sentences) >= 1000 and len(set(sentences)) == len(sentences)
    assert all(s[0].isupper() and s[-1] in ".?!" and len(s.split()) >= 6 for s in sentences)
    assert reference_sentences(10) == sentences[:10]


def test_asking_for_too_many_is_a_clear_error():
    with pytest.raises(ValueError, match="only .* available"):
        reference_sentences(10**6)
