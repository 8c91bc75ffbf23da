"""The front panel of the box: PAIR button and status LEDs (gpiozero)."""
