"""``armguard chaos``: an adversarial run that checks armguard's promise from the record.

An emulator, a store and worker processes run a seeded load while a seeded nemesis kills,
pauses and cuts them off; afterwards a checker that reads only the store's job events, the
emulator's Activity Log and its final state says what was lost, applied twice or overwritten.

``run`` orchestrates, ``world`` and ``load`` say what is written, ``nemesis`` what goes wrong,
``checker`` what the record proves, ``procs`` and ``pg`` own the processes it starts.
"""
