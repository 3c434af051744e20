"""The node agent (``mlnode agent``): one long-running process per node that keeps the image
filesystem's headroom ahead of the kubelet's GC, keeps a warm set of images present, hosts
the node mirror, exports metrics and posts Kubernetes Events.

- :mod:`~mlnode.agent._config`: the YAML config, validated whole (``file:line`` errors);
- :mod:`~mlnode.agent._warm`: the warm set's state machine (pure);
- :mod:`~mlnode.agent._agent`: one level-triggered pass over the ports (headroom GC, warm
  set), the warm pulls, and the SpaceKeeper the hosted mirror asks before a fetch;
- :mod:`~mlnode.agent._metrics`: the agent's Prometheus registry;
- :mod:`~mlnode.agent._service`: the asyncio service (loop, HTTP endpoints, Events, mirror);
- :mod:`~mlnode.agent._run`: opening the live runtime, mirror and API, and running.
"""

from mlnode.agent._agent import Agent, GcOutcome, headroom_target
from mlnode.agent._config import AgentConfig, WarmImage, load_config
from mlnode.agent._metrics import AgentMetrics, image_size_label
from mlnode.agent._run import build_service, run_agent
from mlnode.agent._service import STATUS_SCHEMA, AgentService, EventPoster, status_json
from mlnode.agent._warm import WarmPhase, WarmSet

__all__ = [
    "STATUS_SCHEMA",
    "Agent",
    "AgentConfig",
    "AgentMetrics",
    "AgentService",
    "EventPoster",
    "GcOutcome",
    "WarmImage",
    "WarmPhase",
    "WarmSet",
    "build_service",
    "headroom_target",
    "image_size_label",
    "load_config",
    "run_agent",
    "status_json",
]
