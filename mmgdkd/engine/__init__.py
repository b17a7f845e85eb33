# Copyright (c) mmgdkd contributors. All rights reserved.
from .hooks import RandomStateHook

__all__ = ['RandomStateHook']
