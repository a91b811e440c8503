from nbpipe.cli.commands import main

main()
