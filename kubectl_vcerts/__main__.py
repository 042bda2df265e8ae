"""`python -m kubectl_vcerts` runs the plugin exactly as `kubectl vcerts` does."""

from kubectl_vcerts.cli.entry import main

if __name__ == "__main__":
    main()
