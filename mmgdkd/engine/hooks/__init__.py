# Copyright (c) mmgdkd contributors. All rights reserved.
from .random_state_hook import RandomStateHook

__all__ = ['RandomStateHook']
