// Does nothing, statically linked: bench/hook_bench.py spawns it as it spawns
// the hook, to measure what starting a process costs on the machine.
int main() { return 0; }
