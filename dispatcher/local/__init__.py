"""The local stack: the real dispatcher on this machine (control plane, Argo, Pub/Sub emulator).

Product code (`dispatcher local ...`) and the tests share these modules, so there is one way to
start each server and to apply the shipped overlay.
"""
