from mpsv3.cli.main import main

main()
