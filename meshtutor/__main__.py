from meshtutor.cli import main

main()
