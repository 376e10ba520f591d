from payments_service.cli import main

main()
