"""PEFT methods and full fine-tuning, one sub-package per family (see ``docs/methods.md``).

from repspace.methods import make_config, apply_method, count_parameters
model = apply_method(model, make_config("lora", r=8))
print(count_parameters(model))
"""

from repspace.methods.architectures import ARCHITECTURES, ArchSpec, architecture_of, find_modules
from repspace.methods.base import (
    MethodConfig,
    MethodFacts,
    MethodSpec,
    ParamCount,
    apply_method,
    available_methods,
    config_from_dict,
    count_parameters,
    generation_kwargs,
    get_method,
    load_trainable_state_dict,
    make_config,
    method_facts,
    method_name,
    register_method,
    trainable_state_dict,
)

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "architecture_of",
    "find_modules",
    "MethodConfig",
    "MethodFacts",
    "MethodSpec",
    "ParamCount",
    "apply_method",
    "available_methods",
    "config_from_dict",
    "count_parameters",
    "generation_kwargs",
    "get_method",
    "load_trainable_state_dict",
    "make_config",
    "method_facts",
    "method_name",
    "register_method",
    "trainable_state_dict",
]
