from payments_service.fake_stripe import main

main()
