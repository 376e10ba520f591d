"""The learning agents: hint, quiz, reflection and learning path.

Each agent has its prompt template, the JSON shape its answer must have
(:mod:`ai_service.outputs`) and the response it gives; :func:`run_agent` runs any of
them with the same access check, usage accounting and validation.
"""

from ai_service.agents.base import Agent, AgentInput, Prepared
from ai_service.agents.hint import HINT
from ai_service.agents.path import PATH
from ai_service.agents.quiz import QUIZ
from ai_service.agents.reflection import REFLECTION
from ai_service.agents.runner import run_agent

AGENTS: dict[str, Agent] = {a.name: a for a in (HINT, QUIZ, REFLECTION, PATH)}

__all__ = [
    "AGENTS",
    "HINT",
    "PATH",
    "QUIZ",
    "REFLECTION",
    "Agent",
    "AgentInput",
    "Prepared",
    "run_agent",
]
