from media_service.cli import main

main()
