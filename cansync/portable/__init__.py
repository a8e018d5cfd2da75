"""The few things that differ between Linux, macOS and Windows, done one way on all three.

File locks, stop signals, directory syncs and Windows' rules for names. Imports nothing of cansync, so every
layer (the agent, the store, the command line) may use it. Whatever can be done the same way everywhere is
done that way, so the code the tests run on Linux is the code that runs on Windows and macOS.
"""
