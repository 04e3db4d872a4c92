"""``python -m llama_cpp.server`` with llama.cpp's extra weight buffers (AMX/repack) off.

On CPUs that report AMX (these machines' Xeons do), llama.cpp moves Q4_1 weights into AMX
buffers, and decoding then crashes with a segmentation fault in this build. Plain CPU buffers
work everywhere, and the TA tests need a server that works, not the fastest one.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as lib

_default_params = lib.llama_model_default_params


def _model_params():
    params = _default_params()
    if hasattr(params, "use_extra_bufts"):
        params.use_extra_bufts = False
    return params


lib.llama_model_default_params = _model_params

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
