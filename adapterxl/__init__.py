"""adapterxl: cheap, reproducible intermediate-task transfer to many languages.

Intermediate tasks train stackable adapters on a frozen multilingual encoder; target tasks train
their own adapter stacked on an intermediate one (or fully fine-tune, as the baseline), and are
evaluated zero-shot in every language of the task.
"""

__version__ = "0.1.0"

from .backbones import resolve_model  # noqa: E402
from .config import DataConfig, FusionConfig, RunConfig, TrainingConfig, load_runs, load_task_declarations  # noqa: E402
from .errors import AdapterXLError, ConfigError, DataError, StoreError  # noqa: E402
from .manifest import Manifest  # noqa: E402
from .pipeline import RunResult, evaluate_setup, retrieve, run, run_file  # noqa: E402
from .store import AdapterStore, StoreEntry  # noqa: E402
from .tasks import BUILTIN, TASKS, Task, TaskRegistry, get_task  # noqa: E402
from .translate import translate_task_data  # noqa: E402

__all__ = [
    "AdapterStore",
    "AdapterXLError",
    "BUILTIN",
    "ConfigError",
    "DataConfig",
    "DataError",
    "FusionConfig",
    "Manifest",
    "RunConfig",
    "RunResult",
    "StoreEntry",
    "StoreError",
    "TASKS",
    "Task",
    "TaskRegistry",
    "TrainingConfig",
    "__version__",
    "evaluate_setup",
    "get_task",
    "load_runs",
    "load_task_declarations",
    "resolve_model",
    "retrieve",
    "run",
    "run_file",
    "translate_task_data",
]
