"""LangChain: invoke, per-call and bound attributes, an LCEL chain, a batch, an attribute sweep.

steerlm-server &
python examples/langchain_quickstart.py
"""

from __future__ import annotations

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_steerlm import SteerLMChat


def main() -> None:
    llm = SteerLMChat(max_tokens=48, attributes={"creativity": 4})

    # Per-call attributes merge over the instance's, key by key.
    answer = llm.invoke("Write one sentence about the sea.", attributes={"humor": 7})
    print("attributes:", answer.response_metadata["attributes"])
    print("answer:", answer.content, "\n")

    # An LCEL chain with bound attributes.
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You answer in one short sentence."),
            ("human", "Explain what {thing} is in one sentence."),
        ]
    )
    chain = prompt | llm.bind(attributes={"humor": 0}) | StrOutputParser()
    print("chain:", chain.invoke({"thing": "a volcano"}), "\n")

    # A batch goes to the server as one request.
    for text in llm.batch(
        ["Write one sentence about apples.", "Explain what a volcano is in one sentence."]
    ):
        print("batch:", text.content)

    # The same question at three humor levels.
    for humor in (0, 4, 9):
        reply = llm.invoke("Write one sentence about the sea.", attributes={"humor": humor})
        print(f"humor {humor}:", reply.content)


if __name__ == "__main__":
    main()
