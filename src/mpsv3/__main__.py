from mpsv3.cli import main

main()
