from courses_service.cli import main

main()
