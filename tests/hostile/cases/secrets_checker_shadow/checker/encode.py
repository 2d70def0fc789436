print("HOSTILE-FORGED-AGENT-RAN", flush=True)
