"""The front panel of the box: PAIR button and status LEDs (gpiozero).

`state` (what to show, pure), `patterns` (how it looks, pure data), `pins`
(where it is wired, one TOML file) and `panel` (the gpiozero device object).
"""
