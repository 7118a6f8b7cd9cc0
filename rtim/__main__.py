from rtim.cli import main

main()
