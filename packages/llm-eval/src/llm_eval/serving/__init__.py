"""The pieces of ``scratchlm serve`` (:mod:`llm_eval.server` runs them).

* :mod:`~llm_eval.serving.runner`: the served model (:class:`ModelRunner`): encoding, scoring, embeddings.
* :mod:`~llm_eval.serving.engine`: the seam "generate tokens for this request" (:class:`Engine`),
  and :class:`SerialEngine`, one request at a time.
* :mod:`~llm_eval.serving.parsing`: request bodies, sampling options, unsupported parameters.
* :mod:`~llm_eval.serving.ollama_api`, :mod:`~llm_eval.serving.openai_api`,
  :mod:`~llm_eval.serving.chat_page`: one ``APIRouter`` each.
* :mod:`~llm_eval.serving.app`: :func:`create_app` puts them together.

FastAPI is imported only when an app is built (``pip install 'llm-eval[serve]'``).
"""

from llm_eval.serving.app import create_app
from llm_eval.serving.engine import Engine, GenerationOptions, Piece, PieceDecoder, SerialEngine
from llm_eval.serving.errors import RequestError, ServerBusy
from llm_eval.serving.runner import ModelRunner, TokenScore, chat_prompt

__all__ = [
    "Engine",
    "GenerationOptions",
    "ModelRunner",
    "Piece",
    "PieceDecoder",
    "RequestError",
    "SerialEngine",
    "ServerBusy",
    "TokenScore",
    "chat_prompt",
    "create_app",
]
