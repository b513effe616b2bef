"""A base_url that misses the API's root gets an error naming the fix (issue 19)."""

from __future__ import annotations

import pytest

from langchain_steerlm import SteerLMChat
from steerlm import SteerLMServerError
from steerlm.server.app import NeMoServer


def test_openai_without_v1_names_the_url_asked_and_says_to_add_v1(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, api="openai", max_retries=0)
    with pytest.raises(SteerLMServerError) as caught:
        llm.invoke("Hi")
    error = caught.value
    assert error.status == 404
    assert error.url == f"{nemo.base_url}/models"  # the URL really requested
    assert f"add /v1 to base_url (base_url='{nemo.base_url}/v1')" in str(error)


def test_openai_with_a_model_at_the_root_says_to_add_v1(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=nemo.base_url, api="openai", model="x", max_retries=0)
    with pytest.raises(SteerLMServerError) as caught:
        llm.invoke("Hi")
    assert caught.value.status in (404, 405)
    assert caught.value.url == f"{nemo.base_url}/completions"
    assert "add /v1 to base_url" in str(caught.value)


def test_openai_with_completions_in_base_url_says_to_drop_it(nemo: NeMoServer) -> None:
    url = f"{nemo.base_url}/v1/completions"
    llm = SteerLMChat(base_url=url, api="openai", model="x", max_retries=0)
    with pytest.raises(SteerLMServerError, match="ends with /completions: drop it"):
        llm.invoke("Hi")


def test_nemo_with_generate_in_base_url_says_to_drop_it(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=f"{nemo.base_url}/generate", max_retries=0)
    with pytest.raises(SteerLMServerError) as caught:
        llm.invoke("Hi")
    assert caught.value.url == f"{nemo.base_url}/generate/generate"
    assert f"drop it (base_url='{nemo.base_url}')" in str(caught.value)


def test_nemo_with_v1_in_base_url_points_to_the_openai_api(nemo: NeMoServer) -> None:
    llm = SteerLMChat(base_url=f"{nemo.base_url}/v1", max_retries=0)
    with pytest.raises(SteerLMServerError, match="pass api='openai'"):
        llm.invoke("Hi")


def test_a_404_at_the_right_root_keeps_the_advice_to_read_the_log(nemo: NeMoServer) -> None:
    # An unknown model is a 404 at the right address: nothing in base_url to fix.
    llm = SteerLMChat(base_url=f"{nemo.base_url}/v1", api="openai", model="nope", max_retries=0)
    with pytest.raises(SteerLMServerError, match="Check the server's log") as caught:
        llm.invoke("Hi")
    assert caught.value.status == 404
    assert caught.value.hint is None
